"""Reading a request body at most once, and never beyond the route's limit.

A body larger than the route's ``max_body`` is refused with 413 before it is
read: at once when ``Content-Length`` announces it, or as soon as a chunked
body passes the limit — a 100 MB upload costs the gateway at most the limit
plus one chunk, never the whole upload.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from interlock.errors import Refusal

__all__ = ["announced_too_large", "read_limited"]

_CHUNK: Final = 64 * 1024


def _too_large(limit: int) -> Refusal:
    return Refusal(
        "body-too-large",
        f"this route accepts request bodies of at most {limit} bytes",
        log_reason="request body over the route's limit",
    )


def announced_too_large(request: web.BaseRequest, limit: int) -> Refusal | None:
    """The 413 refusal when ``Content-Length`` already says the body is over ``limit``."""
    announced = request.content_length
    return _too_large(limit) if announced is not None and announced > limit else None


async def read_limited(request: web.BaseRequest, limit: int) -> bytes:
    """The whole body, or a 413 refusal once it would exceed ``limit`` bytes."""
    refusal = announced_too_large(request, limit)
    if refusal is not None:
        raise refusal
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
