"""Refuse compressed request bodies before anything reads them.

A few hundred kilobytes of gzip inflate to hundreds of megabytes (a
decompression bomb, CWE-409), and every check after inflation — the body-size
limit, the parsers — would see only the inflated result. The listener never
inflates (aiohttp's ``auto_decompress`` is off), and a request that declares
any ``Content-Encoding`` but ``identity`` is refused here with 415 and
``Accept-Encoding: identity`` (RFC 7694 §3), its body unread and nothing
forwarded. No route may opt in to compressed bodies (see docs/operations.md).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from interlock.errors import Refusal
from interlock.gateway.context import RequestContext

__all__ = ["ContentEncodingGuard", "refuse_content_encoding"]

_IDENTITY: Final = "identity"


def refuse_content_encoding(request: web.BaseRequest) -> None:
    """Raise a 415 refusal if ``request`` declares a content coding other than ``identity``."""
    codings = {
        token.strip().lower()
        for value in request.headers.getall("Content-Encoding", [])
        for token in value.split(",")
    }
    codings.discard("")
    codings.discard(_IDENTITY)
    if codings:
        raise Refusal(
            "unsupported-content-encoding",
            "compressed request bodies are not accepted; send the body uncompressed "
            "(without Content-Encoding)",
            log_reason="request Content-Encoding refused",
        )


class ContentEncodingGuard:
    """The route stage: no compressed body reaches a parser or the upstream."""

    async def __call__(self, ctx: RequestContext) -> None:
        """Refuse with 415 if the request declares a content coding."""
        refuse_content_encoding(ctx.request)
