"""The Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header-07).

Wraps the terminal (the upstream call), since it has to see the response to
store it. Only ``POST`` and ``PATCH`` take part: the other methods are
idempotent already (RFC 9110 §9.2.2), and pass through untouched.

* first request with a key: forwarded; its response is stored (sealed with
  the keyring by the shared stores) for the ttl — 24 hours, or the
  integration's retention when that is shorter;
* the same key, same fingerprint (method, target, body): the stored response,
  marked ``Idempotency-Replayed: ?1``;
* the same key while the first is in flight: 409 (draft §2.7);
* the same key with another fingerprint: 422 (draft §2.7);
* no key on a route that requires one, or a malformed key: 400.

A request holds its record for a lease (2 minutes), after which a retry may
take the record over (the replica processing it may have died). So the
forward must end first: it is cut at four fifths of the lease (504
``upstream-timeout``, the record released), leaving a fifth for clocks that
disagree (Redis decides leases by its own). The upstream call's own overall
deadline (``UpstreamLimits.total_seconds``, 60 s) normally ends it sooner.

Responses that say "try again" — 408, 425, 429 and every 5xx, including the
gateway's own 502/504 when the upstream fails — are not stored: the record is
abandoned so that the client's retry, the reason the key exists, is processed.

The upstream gets an ``Idempotency-Key`` too, so that one implementing the
draft can de-duplicate a request whose outcome we could not see (a timeout) —
but not the caller's: every caller reaches the upstream with the system's one
credential, so the upstream would scope client A's key and client B's equal
key alike (B replayed A's answer). It gets one derived from the client, the
route and the key under a deployment key (:meth:`IdempotencyStore.upstream_key`):
the same on every retry and replica, another for another client. Routes
without a policy forward no ``Idempotency-Key`` at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

from aiohttp import web
from multidict import CIMultiDict

from interlock.errors import Refusal
from interlock.gateway.context import RequestContext
from interlock.replay.idempotency import (
    Begun,
    IdempotencyOutcome,
    IdempotencyStore,
    InFlight,
    Mismatch,
    StoredResponse,
    Unreadable,
    fingerprint,
)

__all__ = [
    "DEFAULT_TTL",
    "REPLAYED_HEADER",
    "IdempotencyPolicy",
    "IdempotentForward",
    "parse_idempotency_key",
]

Terminal = Callable[[RequestContext], Awaitable[web.Response]]

HEADER: Final = "Idempotency-Key"
# The draft names no header for this; a Structured Field boolean (RFC 9651 §3.3.6),
# like the key itself, so a client can tell a replay from a fresh answer.
REPLAYED_HEADER: Final = "Idempotency-Replayed"
_METHODS: Final = frozenset({"POST", "PATCH"})
_MAX_KEY: Final = 255
# Replayed as they were; Content-Length is the framework's, and never Set-Cookie,
# hop-by-hop or credential headers (allow-list, not deny-list).
_KEPT_HEADERS: Final = frozenset(
    {
        "cache-control",
        "content-encoding",  # the upstream body is relayed undecoded
        "content-language",
        "content-location",
        "content-type",
        "etag",
        "expires",
        "last-modified",
        "link",
        "location",
        "preference-applied",
        "vary",
    }
)
_TRANSIENT: Final = frozenset({408, 425, 429})
_DEADLINE_SHARE: Final = 0.8
DEFAULT_TTL: Final = timedelta(hours=24)


@dataclass(frozen=True)
class IdempotencyPolicy:
    """How one route treats the header."""

    mode: Literal["required", "optional"]
    # Draft §2.3: the server defines the expiry and publishes it (docs/gateway.md).
    ttl: timedelta = DEFAULT_TTL
    # How long a request may be in flight before a retry may take the key over.
    lease: timedelta = timedelta(minutes=2)
    max_stored_bytes: int = 1024 * 1024

    @property
    def deadline(self) -> float:
        """Seconds a forward may take: four fifths of the lease, so it ends before the lease."""
        return self.lease.total_seconds() * _DEADLINE_SHARE


def parse_idempotency_key(values: Iterable[str]) -> str | None:
    """The key from the header's field values; None when absent.

    Draft §2.1: one field, an sf-string (RFC 9651 §3.3.3); we take 1 to 255
    characters. Raises :class:`Refusal` (400) otherwise.
    """
    fields = list(values)
    if not fields:
        return None
    if len(fields) > 1:
        raise _malformed("send exactly one Idempotency-Key field")
    key = _sf_string(fields[0].strip(" \t"))
    if key is None or not 1 <= len(key) <= _MAX_KEY:
        raise _malformed(
            'the key must be a quoted string of 1 to 255 printable characters, e.g. "8e03978e-..."'
        )
    return key


def _sf_string(text: str) -> str | None:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return None
    out: list[str] = []
    escaped = False
    for char in text[1:-1]:
        if not " " <= char <= "~":  # RFC 9651 §3.3.3: printable ASCII only
            return None
        if escaped:
            if char not in {'"', "\\"}:  # only these two may be escaped
                return None
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return None
        else:
            out.append(char)
    return None if escaped else "".join(out)


class IdempotentForward:
    """The terminal for routes with ``idempotency`` set."""

    def __init__(
        self, store: IdempotencyStore, policy: IdempotencyPolicy, terminal: Terminal
    ) -> None:
        """Guard ``terminal`` with records in ``store``."""
        self._store = store
        self._policy = policy
        self._terminal = terminal

    async def __call__(self, ctx: RequestContext) -> web.Response:
        """Forward once per key; replay or refuse the rest."""
        request = ctx.request
        if request.method not in _METHODS:
            return await self._terminal(ctx)
        key = parse_idempotency_key(request.headers.getall(HEADER, []))
        if key is None:
            if self._policy.mode == "required":
                raise Refusal(
                    "idempotency-key-missing", _MISSING, log_reason="Idempotency-Key missing"
                )
            return await self._terminal(ctx)
        body = await ctx.read_body()  # read once: the upstream call forwards the same bytes
        scope = _scope(ctx)
        ctx.idempotency_key = self._store.upstream_key(scope, key)
        print_ = fingerprint(request.method, request.raw_path, body)
        policy = self._policy
        outcome: IdempotencyOutcome = await self._store.begin_async(
            scope, key, print_, policy.ttl, policy.lease
        )
        if isinstance(outcome, Begun):
            return await self._forward(ctx, scope, key, outcome.token)
        if isinstance(outcome, InFlight):
            raise Refusal(
                "idempotency-key-in-flight",
                _IN_FLIGHT,
                headers={"Retry-After": "1"},
                log_reason="Idempotency-Key in flight",
            )
        if isinstance(outcome, Mismatch):
            raise Refusal(
                "idempotency-key-reused",
                _MISMATCH,
                log_reason="Idempotency-Key reused with another request",
            )
        if isinstance(outcome, Unreadable):
            raise Refusal(
                "idempotency-key-completed",
                "a request with this Idempotency-Key was processed, but its stored response "
                "cannot be replayed; do not retry it with this key",
                log_reason="Idempotency-Key completed; its stored response does not open",
            )
        return _replay(outcome.response, ctx.correlation_id)

    async def _forward(self, ctx: RequestContext, scope: str, key: str, token: str) -> web.Response:
        try:
            async with asyncio.timeout(self._policy.deadline):
                response = await self._terminal(ctx)
        except BaseException as exc:
            # Refusals (upstream 502/504), errors, cancellation, the deadline: let a
            # retry proceed.
            await asyncio.shield(self._store.abandon_async(scope, key, token))
            if isinstance(exc, TimeoutError):
                raise Refusal(
                    "upstream-timeout",
                    "the upstream system could not complete the request in time",
                    log_reason="forward cut before its Idempotency-Key lease ran out",
                ) from None
            raise
        if response.status >= 500 or response.status in _TRANSIENT:
            await self._store.abandon_async(scope, key, token)
        else:
            kept = _stored(response, self._policy.max_stored_bytes)
            await self._store.complete_async(scope, key, token, kept)
        return response


def _scope(ctx: RequestContext) -> str:
    # Draft §5: a composite lookup key — the client's own key, its identity and
    # the route — so one client's key never reaches another's record.
    client = ctx.principal.client if ctx.principal is not None else "-"
    return f"{client}\0{ctx.match.route.label}"


def _stored(response: web.Response, cap: int) -> StoredResponse:
    headers = tuple((n, v) for n, v in response.headers.items() if n.lower() in _KEPT_HEADERS)
    body = b"" if response.body is None else response.body
    # A streamed payload, or one over the cap, is not kept: replays get 409 instead.
    kept = bytes(body) if isinstance(body, bytes | bytearray) and len(body) <= cap else None
    return StoredResponse(response.status, headers, kept)


def _replay(stored: StoredResponse, correlation_id: str) -> web.Response:
    if stored.body is None:
        raise Refusal(
            "idempotency-key-completed",
            "a request with this Idempotency-Key was processed, but its response was too "
            "large to keep for replay; do not retry it with this key",
            extra={"original_status": stored.status},
            log_reason="Idempotency-Key completed without a stored response",
        )
    headers: CIMultiDict[str] = CIMultiDict(stored.headers)
    headers[REPLAYED_HEADER] = "?1"
    headers["X-Request-Id"] = correlation_id
    return web.Response(status=stored.status, body=stored.body, headers=headers)


def _malformed(detail: str) -> Refusal:
    return Refusal("idempotency-key-malformed", detail, log_reason="Idempotency-Key malformed")


_MISSING: Final = (
    "this operation requires an Idempotency-Key header: a unique quoted string per operation, "
    "sent again unchanged on every retry"
)
_IN_FLIGHT: Final = "a request with the same Idempotency-Key is being processed; retry later"
_MISMATCH: Final = (
    "this Idempotency-Key was used with a different request; use a new key for a new request"
)
