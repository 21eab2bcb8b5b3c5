"""aiohttp's low-level server, with parse errors answered as problems.

aiohttp answers a request it cannot parse (oversized or too many headers,
``Content-Length`` with ``Transfer-Encoding``, bad bytes) with a text/plain
body that quotes the offending input, and logs the input with a traceback. A
quoted header may be a credential, so we answer with a fixed problem document
instead and log only the kind of error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from interlock.gateway.problems import CONTENT_TYPE, PROBLEM_TYPE_BASE
from interlock.logs import get_logger

__all__ = ["ProblemServer"]

_log = get_logger("interlock.gateway")


class _ProblemRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; closing the connection")
        correlation_id = uuid.uuid4().hex
        _log.warning(
            "request refused by the HTTP parser",
            status=status,
            error=type(exc).__name__ if exc else None,
            correlation_id=correlation_id,
        )
        title = "Malformed request" if status < 500 else "Internal error"
        body = {
            "type": PROBLEM_TYPE_BASE + ("malformed-request" if status < 500 else "internal-error"),
            "title": title,
            "status": status,
            "detail": "the request could not be parsed: check header sizes, header count, "
            "the request line and framing (Content-Length / Transfer-Encoding)"
            if status < 500
            else "the request failed; quote the correlation id to the operator",
            "correlation_id": correlation_id,
        }
        response = web.Response(
            status=status,
            body=json.dumps(body).encode(),
            content_type=CONTENT_TYPE,
            headers={"X-Request-Id": correlation_id},
        )
        response.force_close()
        return response


class ProblemServer(Server):
    """``aiohttp.web_server.Server`` whose connections answer parse errors as problems."""

    def __init__(
        self, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], **kwargs: Any
    ) -> None:
        """Serve ``handler``; ``kwargs`` go to each connection's request handler."""
        super().__init__(handler, **kwargs)
        self._handler_kwargs = kwargs

    def __call__(self) -> RequestHandler:
        """A connection handler."""
        return _ProblemRequestHandler(self, loop=self._loop, **self._handler_kwargs)
