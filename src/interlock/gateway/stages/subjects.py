"""Data subjects in what crossed the gateway, read into ``ctx.sightings``.

The outermost wrapper of the terminal (outside response minimisation and
Idempotency-Key), on routes whose integration or route declares ``subjects``;
other routes do not have it and pay nothing. It reads after the upstream
answered, so a request refused on the way pays nothing either, and what it
reads is what crossed: the request body as forwarded (neutralised CSV,
minimised JSON), the response as relayed (after minimisation).

* the upstream answered: sightings of the request (``upstream`` receivers;
  ``caller`` ones too when it answered 2xx) and of the response;
* the upstream answered 5xx (withheld from the caller as a 502): the request
  was forwarded, so its ``upstream`` sightings hold; nothing reached the caller;
* anything else (timeout, TLS failure, a refusal): nothing is recorded, as the
  audit trail records no forwarding.

Extraction of more than 64 KiB of bodies runs off the event loop. It never
fails the request: the upstream has acted by now, and an error answer would
invite a retry of something done. A failure is logged by type only (never a
value) and counted as unparsed. Values are never logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from interlock.gateway.context import RequestContext
from interlock.gateway.upstream_errors import UpstreamServerError
from interlock.logs import get_logger
from interlock.privacy.subjects import Found, RouteSubjects

__all__ = ["SubjectCapture"]

Terminal = Callable[[RequestContext], Awaitable[web.Response]]

_INLINE_BYTES: Final = 64 * 1024  # as validation: bodies up to this size are read on the loop
_log = get_logger("interlock.gateway.subjects")


class SubjectCapture:
    """The upstream call, with the data subjects it carried recorded on the context."""

    def __init__(self, subjects: RouteSubjects, forward: Terminal, label: str = "") -> None:
        """Read ``subjects`` from what ``forward`` sends and returns; ``label`` names the route."""
        self._subjects = subjects
        self._forward = forward
        self._label = label

    async def __call__(self, ctx: RequestContext) -> web.Response:
        """Forward, then fill ``ctx.sightings`` (and the counts) from what crossed."""
        try:
            response = await self._forward(ctx)
        except UpstreamServerError:  # forwarded: the target has the data
            await self._capture(ctx, None)
            raise
        await self._capture(ctx, response)
        return response

    async def _capture(self, ctx: RequestContext, response: web.Response | None) -> None:
        request = ctx.request
        body = ctx.body or None
        media = request.content_type if body is not None else None
        relayed = response.body if response is not None else None
        answer = relayed if isinstance(relayed, bytes) and relayed else None
        size = len(body or b"") + len(answer or b"")
        arguments = (ctx, body, media, response, answer)
        try:
            if size <= _INLINE_BYTES:
                found = self._extract(*arguments)
            else:
                found = await asyncio.to_thread(self._extract, *arguments)
        except Exception as error:  # noqa: BLE001  (never fail a request the upstream has acted on)
            _log.error(
                "subject extraction failed",
                route=self._label,
                correlation_id=ctx.correlation_id,
                error=type(error).__name__,  # the type only: a message could quote a value
            )
            ctx.subjects_unparsed += 1
            return
        ctx.sightings.extend(found.sightings)
        ctx.subjects_unparsed += found.unparsed
        ctx.subjects_overflow += found.overflow

    def _extract(
        self,
        ctx: RequestContext,
        body: bytes | None,
        media: str | None,
        response: web.Response | None,
        answer: bytes | None,
    ) -> Found:
        status = response.status if response is not None else None
        found = self._subjects.from_request(
            ctx.match.values,
            ctx.request.rel_url.query,
            ctx.parsed,
            body,
            media,
            status=status,
        )
        if response is not None and answer is not None:
            found += self._subjects.from_response(answer, response.content_type, response.status)
        return found
