"""Which headers cross the gateway: an allow-list each way, per route.

Deny by default. A request header reaches the upstream only if it is in
:data:`DEFAULT_FORWARDED` or the route's ``forward_headers``; an upstream
response header reaches the caller only if it is in :data:`DEFAULT_RETURNED`
or the route's ``return_headers``. Whatever the lists say, a name with ``_``
never crosses (WSGI and CGI read ``X_Forwarded_For`` as ``X-Forwarded-For``),
nor does a hop-by-hop header or one the ``Connection`` header names
(RFC 9110 §7.6.1). The manifest refuses the names that must never be added
(:mod:`interlock.config.header_names`). Interlock's own headers (``Forwarded``,
``X-Request-Id``, the upstream credential) are set after filtering.

A forwarded request header's value must be printable US-ASCII (with space
and tab), else the request is refused with 400 ``malformed-header`` before
the upstream is involved. RFC 9110 §5.5 leaves other octets (obs-text) to be
treated as opaque, and they are read differently downstream: as ISO-8859-1 by
some, as UTF-8 by others, or as an error (such a byte used to fail the
upstream call, a 502 counted against a healthy upstream). No header of the
allow-lists needs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from multidict import CIMultiDict, CIMultiDictProxy

from interlock.config.header_names import HOP_BY_HOP
from interlock.config.manifest import Route, SubjectLocator
from interlock.errors import Refusal

__all__ = ["DEFAULT_FORWARDED", "DEFAULT_RETURNED", "HeaderPolicy"]

#: Request headers every route forwards: content negotiation, the body's type and
#: language, W3C trace context and conditional requests. (``Idempotency-Key`` is
#: not the caller's to forward: routes with an idempotency policy send one derived
#: per client, :mod:`interlock.gateway.stages.idempotency`.)
DEFAULT_FORWARDED: Final = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "content-type",
        "content-language",
        "traceparent",
        "tracestate",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
    }
)

#: Upstream response headers every route relays: what the body is, how it may be
#: cached, where a redirect or a created resource is, when to retry.
#: (Content-Length is the gateway's own, computed for the body it sends.)
DEFAULT_RETURNED: Final = frozenset(
    {
        "content-type",
        "content-encoding",  # the upstream body is relayed undecoded
        "content-language",
        "cache-control",
        "expires",
        "age",
        "etag",
        "last-modified",
        "location",
        "retry-after",
        "vary",
    }
)

# RFC 9110 §5.5 field-value narrowed to VCHAR, SP and HTAB: no obs-text, no control.
_NOT_ASCII: Final = re.compile(r"[^\t\x20-\x7e]")

# A compressed answer cannot be cut to response_fields (it would be refused, 502),
# nor read by a response-side subject locator (the person would reach the caller
# unseen by the lineage): such routes ask for identity bodies.
_NOT_ON_READ_RESPONSES: Final = frozenset({"accept-encoding"})


@dataclass(frozen=True)
class HeaderPolicy:
    """The lower-case header names one route relays each way."""

    forwarded: frozenset[str]
    returned: frozenset[str]

    @classmethod
    def for_route(
        cls, route: Route, *, integration_subjects: Sequence[SubjectLocator]
    ) -> HeaderPolicy:
        """The defaults widened by the route's ``forward_headers`` and ``return_headers``.

        ``integration_subjects``: the route's integration's ``subjects`` (they apply
        to its every route). A route that reads its answers (``response_fields``, a
        locator ``in: response``) forwards no ``Accept-Encoding``.
        """
        forwarded = DEFAULT_FORWARDED | {name.lower() for name in route.forward_headers}
        locators = (*integration_subjects, *route.subjects)
        if route.response_fields is not None or any(x.in_ == "response" for x in locators):
            forwarded -= _NOT_ON_READ_RESPONSES
        returned = DEFAULT_RETURNED | {name.lower() for name in route.return_headers}
        return cls(frozenset(forwarded), frozenset(returned))

    def request_headers(self, headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
        """The caller's headers this route forwards upstream (before Interlock adds its own).

        Raises a 400 :class:`Refusal` for a forwarded value that is not printable ASCII.
        """
        kept = _allowed(headers, self.forwarded)
        for name, value in kept.items():
            if _NOT_ASCII.search(value) is not None:
                raise Refusal(
                    "malformed-header",
                    f"the {name} header holds a byte that is not printable ASCII; "
                    "send header values in US-ASCII",
                    log_reason=f"forwarded header {name} holds a non-ASCII byte",
                )
        return kept

    def response_headers(self, headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
        """The upstream's response headers this route relays to the caller."""
        return _allowed(headers, self.returned)


def _allowed(headers: CIMultiDictProxy[str], allowed: frozenset[str]) -> CIMultiDict[str]:
    kept: CIMultiDict[str] = CIMultiDict()
    dropped = _connection_tokens(headers.getall("Connection", ()))
    for name, value in headers.items():
        lower = name.lower()
        # The lists never hold such names; checked here too, so no edit of them can.
        if lower not in allowed or "_" in lower or lower in HOP_BY_HOP or lower in dropped:
            continue
        kept.add(name, value)
    return kept


def _connection_tokens(values: Iterable[str]) -> frozenset[str]:
    # RFC 9110 §7.6.1: a field named in Connection is hop-by-hop for this message.
    return frozenset(token.strip().lower() for value in values for token in value.split(","))
