"""Which header names a route may add to the gateway's header allow-lists.

A route widens the default allow-lists with ``forward_headers`` (request
headers relayed to the upstream) and ``return_headers`` (upstream response
headers relayed to the caller). Some names are never allowed, whatever the
manifest says, and each refusal says why:

* a name containing ``_``: WSGI and CGI upstreams turn ``-`` into ``_``
  (``HTTP_X_FORWARDED_FOR``), so ``X_Forwarded_For`` reads as
  ``X-Forwarded-For`` there, past any check on the hyphenated name;
* credentials: the caller's never leave Interlock, the upstream's session
  cookies never reach the caller;
* hop-by-hop headers (RFC 9110 §7.6.1) and what Interlock computes or sets
  itself (``Host``, ``Content-Length``, ``Forwarded``, ``X-Request-Id``);
* headers that change what the upstream does or whom it believes is asking:
  method overrides, URL rewrites, client-address and user-identity headers.
  Interlock authenticates the caller; an upstream that trusts ``X-User`` from
  the gateway would otherwise trust whatever the caller wrote there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, Literal

from interlock.credentials.names import is_credential_header

__all__ = ["HOP_BY_HOP", "check_header_name", "header_name_refusal"]

#: RFC 9110 §7.6.1 and the older connection-specific fields; never relayed either way.
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

# A header name here: an RFC 9110 §5.1 token narrowed to letters, digits and '-'.
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_SET_BY_INTERLOCK: Final = frozenset({"host", "content-length", "forwarded", "x-request-id"})
# The body goes upstream as Interlock read (and checked) it: decoded, never re-encoded.
_NOT_FORWARDED: Final = frozenset({"content-encoding", "via"})
# Interlock sends the upstream one derived per client (gateway/stages/idempotency.py):
# under the system's one credential, a caller's own key would meet another caller's.
_PER_CLIENT: Final = frozenset({"idempotency-key"})
# Method overrides and URL rewrites (Symfony, Laravel, IIS, Spring, Rails honour these).
_REWRITES: Final = frozenset(
    {
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-original-uri",
        "x-original-method",
        "x-rewrite-url",
    }
)
# Who is asking, from where: Interlock states it (Forwarded), the caller cannot.
_IDENTITY: Final = frozenset(
    {
        "x-real-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "x-remote-ip",
        "x-remote-addr",
        "x-originating-ip",
        "client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-user",
        "x-user-id",
        "x-remote-user",
        "remote-user",
        "x-auth-user",
        "x-authenticated-user",
        "x-client-cert",
        "x-ssl-client-cert",
        "ssl-client-cert",
    }
)
_IDENTITY_PREFIXES: Final = ("x-forwarded-", "x-original-", "x-client-cert-", "x-ssl-client-")
# Version disclosure (CWE-200): nothing identifies the software behind the gateway.
_DISCLOSING: Final = frozenset(
    {"server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version", "x-generator"}
)

Direction = Literal["forward", "return"]


def header_name_refusal(name: str, direction: Direction) -> str | None:
    """Why ``name`` may not be added to the ``direction`` allow-list, or None if it may."""
    if "_" in name:
        return (
            f"{name!r} contains '_': WSGI and CGI upstreams read '_' as '-' "
            "(X_Forwarded_For is X-Forwarded-For to them), so no such header crosses the gateway"
        )
    if not _NAME.match(name):
        return f"{name!r} is not a header name: 1-64 letters, digits and '-'"
    lower = name.lower()
    for applies, refused, why in _RULES:
        if direction in applies and refused(lower):
            return f"{name} {why}"
    return None


_BOTH: Final = ("forward", "return")
_RULES: Final[tuple[tuple[tuple[Direction, ...], Callable[[str], bool], str], ...]] = (
    (_BOTH, HOP_BY_HOP.__contains__, "is hop-by-hop (RFC 9110 §7.6.1): it concerns one link"),
    (
        _BOTH,
        is_credential_header,
        "carries credentials, which never cross the gateway",
    ),
    (_BOTH, _SET_BY_INTERLOCK.__contains__, "is set by Interlock itself"),
    (
        ("forward",),
        _NOT_FORWARDED.__contains__,
        "describes the caller's own connection or encoding, not the body Interlock forwards",
    ),
    (
        ("forward",),
        _PER_CLIENT.__contains__,
        "is sent by Interlock, derived per client: every caller shares the system's "
        "credential upstream, so a caller's own key would meet another caller's",
    ),
    (("forward",), _REWRITES.__contains__, "changes the method or URL the upstream acts on"),
    (
        ("forward",),
        lambda lower: lower in _IDENTITY or lower.startswith(_IDENTITY_PREFIXES),
        "claims a client address or identity; Interlock states who asks (Forwarded), "
        "the caller cannot",
    ),
    (("return",), _DISCLOSING.__contains__, "discloses the upstream's software (CWE-200)"),
)


def check_header_name(name: str, direction: Direction) -> str:
    """``name`` if a route may allow it in ``direction``; ``ValueError`` saying why not."""
    reason = header_name_refusal(name, direction)
    if reason is not None:
        raise ValueError(reason)
    return name
