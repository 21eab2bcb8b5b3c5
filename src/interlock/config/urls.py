"""URLs in the manifest and the settings: never a credential inside one, never one shown with it.

A password in a URL ends up wherever the URL is shown: ``interlock check``
evidence, ``validate`` output, CI logs, a published issuer. So every URL the
manifest or the settings hold is refused when it carries one — in its userinfo
(``user:pw@``) or in a query parameter that names a credential (``?token=``,
``?password=``) — and the messages that refuse it never repeat the value
(CWE-522, CWE-532). Credentials are named by ``secret://`` reference instead.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

from interlock.credentials.names import is_credential_parameter

__all__ = [
    "MAX_URL_LENGTH",
    "check_https_url",
    "credential_in_url",
    "is_credential_parameter",
    "masked_url",
]

MAX_URL_LENGTH: Final = 2000

_MASK: Final = "***"


def credential_in_url(value: str, *, user: bool = False) -> str | None:
    """What credential ``value`` carries, in words (never the value), or None.

    ``user``: a user name alone is allowed (a database role), a password is not.
    """
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and not user:
        return "a user name or password"
    if ":" in userinfo:
        return "a password"
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if is_credential_parameter(name):
            return f"a {name.strip().lower()[:40]!r} query parameter"
    return None


def check_https_url(
    value: str, *, why: str, what: str = "URL", query: bool = True, fragment: bool = False
) -> str:
    """``value`` if it is an ``https://`` URL with a host and no credential; else ValueError.

    ``why`` says why TLS is needed; ``query`` and ``fragment`` whether the URL may
    have one (a query parameter never carries a credential). No message repeats
    the value.
    """
    if len(value) > MAX_URL_LENGTH or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(
            f"{what} must be at most {MAX_URL_LENGTH} characters, without spaces or "
            "control characters"
        )
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is no number raises here, its text in the message
    except ValueError:
        raise ValueError(f"{what} is not a valid URL") from None
    if parts.scheme != "https":
        raise ValueError(f"{what} must use https:// (got {parts.scheme or 'no'} scheme): {why}")
    if not parts.hostname:
        raise ValueError("URL has no host")
    found = credential_in_url(value)
    if found is not None:
        raise ValueError(
            f"URL must not carry credentials ({found}); name them by reference, secret://..."
        )
    if parts.query and not query:
        raise ValueError("URL must not have a query")
    if parts.fragment and not fragment:
        raise ValueError("URL must not have a fragment")
    return value


def masked_url(value: str, *, user: bool = False) -> str:
    """``value`` with its userinfo and every query value masked: what may be shown of a URL.

    ``user``: the user name is shown (a database role), its password masked.
    """
    try:
        parts = urlsplit(value)
    except ValueError:
        return _MASK
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and user:
        name, colon, _ = userinfo.partition(":")
        netloc = f"{name}{':' + _MASK if colon else ''}@{host}"
    elif at:
        netloc = f"{_MASK}@{host}"
    # A parameter keeps its name; a piece without '=' may be a bare token: masked whole.
    pieces = (piece.partition("=") for piece in parts.query.split("&")) if parts.query else ()
    query = "&".join(f"{name}={_MASK}" if equals else _MASK for name, equals, _ in pieces)
    fragment = _MASK if parts.fragment else ""
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, fragment))
