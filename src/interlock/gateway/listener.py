"""aiohttp's low-level server: parse errors answered as problems, connections bounded.

aiohttp answers a request it cannot parse (oversized or too many headers,
``Content-Length`` with ``Transfer-Encoding``, bad bytes) with a text/plain
body that quotes the offending input, and logs the input with a traceback. A
quoted header may be a credential, so we answer with a fixed problem document
instead and log only the kind of error. Such an answer goes on the audit
trail like any other (``refused``: the listener's owner records it), so no
request the listener answers is missing there.

Each connection is also held to the deadlines and caps of
:mod:`interlock.gateway.connections` (slowloris), request bodies are never
inflated here (``auto_decompress`` off: a compressed request is refused by the
gateway, see :mod:`interlock.gateway.stages.content_encoding`), and every
answer says ``Server: interlock`` instead of aiohttp's product and Python
versions.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from interlock.gateway.client_address import reported_peer
from interlock.gateway.connections import (
    SERVER_NAME,
    ConnectionCounter,
    ConnectionLimits,
    over_capacity_response,
)
from interlock.gateway.problems import CONTENT_TYPE, PROBLEM_TYPE_BASE
from interlock.logs import get_logger

__all__ = ["ListenerSite", "ProblemServer"]

_log = get_logger("interlock.gateway")
_Waiting = Literal["first-byte", "headers"]
#: Told of each answer the handler did not give (the request, its status, correlation id).
Refused = Callable[[web.BaseRequest, int, str], None]


class _ProblemRequestHandler(RequestHandler):
    # The deadlines read aiohttp 3.14's RequestHandler state (_waiter, _request_count);
    # tests/gateway/test_listener.py fails if an aiohttp upgrade changes it.
    def __init__(
        self,
        manager: ProblemServer,
        *,
        limits: ConnectionLimits,
        counter: ConnectionCounter,
        refused: Refused | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, keepalive_timeout=limits.keepalive_seconds, **kwargs)
        self._limits = limits
        self._counter = counter
        self._refused = refused
        self._address: str | None = None  # set once the connection is counted
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting: _Waiting | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # With TLS this runs once the handshake is done (its own deadline is the site's).
        # Behind a PROXY v2 balancer the client's address, not the balancer's, is counted.
        peer = transport.get_extra_info("peername")
        tcp_peer = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        address = reported_peer(self) or tcp_peer
        over = self._counter.admit(address)
        if over is not None:
            self.close()  # nothing this connection sends is parsed
            correlation_id = uuid.uuid4().hex
            _log.warning(
                "connection refused: over the cap",
                cap=over,
                open_connections=self._counter.total,
                correlation_id=correlation_id,
            )
            # Not isinstance(WriteTransport): uvloop's TLS transport is no subclass of it.
            writable = cast(asyncio.Transport, transport)
            writable.write(over_capacity_response(over, correlation_id))
            writable.close()
            return
        self._address = address
        super().connection_made(transport)
        self._expect("first-byte", self._limits.first_byte_seconds)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._address is not None:
            self._counter.release(self._address)
            self._address = None
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and (self._waiting == "first-byte" or (self._waiting is None and self._idle())):
            # The first byte of a request: its headers must now be complete in time.
            self._expect("headers", self._limits.headers_seconds)
        requests = self._request_count
        super().data_received(data)
        if self._request_count != requests:  # a request's headers are complete
            self._disarm()

    def _idle(self) -> bool:
        """Waiting for the next request (not handling one, not draining a body)."""
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def _expect(self, what: _Waiting, seconds: float) -> None:
        self._disarm()
        self._waiting = what
        self._deadline = self._loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._waiting = None

    def _expired(self, what: _Waiting) -> None:
        self._deadline = None
        self._waiting = None
        _log.info("connection closed: request not received in time", waiting_for=what)
        self.force_close()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if not resp.prepared:
            # aiohttp would name itself and the Python version: "Python/3.11 aiohttp/3.14.5".
            resp.headers["Server"] = SERVER_NAME
        return await super().finish_response(request, resp, start_time)

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
        if self._refused is not None:
            try:
                self._refused(request, status, correlation_id)
            except Exception:  # noqa: BLE001  (recording must not keep the answer back)
                _log.exception("refused request not recorded", correlation_id=correlation_id)
        return response


class ProblemServer(Server):
    """``aiohttp.web_server.Server`` whose connections answer parse errors as problems.

    Its connections are held to ``limits`` (deadlines and caps) and never
    inflate a compressed request body.
    """

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        limits: ConnectionLimits | None = None,
        *,
        refused: Refused | None = None,
        **kwargs: Any,
    ) -> None:
        """Serve ``handler``; ``kwargs`` go to each connection's request handler.

        ``refused`` is told of each answer ``handler`` did not give: a request the
        HTTP parser refused, or one whose handler raised (it records them).
        """
        super().__init__(handler, **kwargs)
        self.limits = limits or ConnectionLimits()
        self.refused = refused
        self.counter = ConnectionCounter(self.limits)
        self._handler_kwargs = {**kwargs, "auto_decompress": False}

    def __call__(self) -> RequestHandler:
        """A connection handler."""
        return _ProblemRequestHandler(
            self,
            loop=self._loop,
            limits=self.limits,
            counter=self.counter,
            refused=self.refused,
            **self._handler_kwargs,
        )


class ListenerSite(web.TCPSite):
    """``aiohttp.web.TCPSite`` whose TLS handshakes must finish within ``handshake_seconds``.

    aiohttp's site leaves the event loop's default (60 s): a client that connects
    and never says hello would hold its socket that long.
    """

    def __init__(
        self, runner: web.BaseRunner, *args: Any, handshake_seconds: float, **kwargs: Any
    ) -> None:
        """As ``TCPSite``, with the handshake's deadline."""
        super().__init__(runner, *args, **kwargs)
        self._handshake_seconds = handshake_seconds

    async def start(self) -> None:
        """Bind and listen (``TCPSite.start`` with ``ssl_handshake_timeout``)."""
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner is not set up")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=self._handshake_seconds if self._ssl_context else None,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
