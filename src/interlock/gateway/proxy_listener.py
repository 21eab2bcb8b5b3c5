"""A TLS listener whose trusted proxies open every connection with a PROXY v2 header.

``INTERLOCK_PROXY_PROTOCOL=v2``: a TCP balancer in passthrough mode writes the
client's address (:mod:`interlock.gateway.proxy_v2`) before the client's TLS
handshake. The header has to be read off the socket before TLS starts, and
byte-exactly: asyncio cannot hand bytes it has already read to a TLS layer
started afterwards. So this site accepts connections itself, reads exactly
the header's bytes from a trusted peer, and then hands the socket to the
same aiohttp server as :class:`aiohttp.web.TCPSite` would, TLS included.

HAProxy's specification forbids guessing whether a header is there: a
connection from a trusted proxy must start with one (else it is closed
unanswered), and a connection from anyone else must not (it is served as a
direct one, so a header it sends fails its TLS handshake).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, Final

from aiohttp import web

from interlock.gateway.client_address import TrustedProxies, report_peer
from interlock.gateway.proxy_v2 import (
    HEADER_PREFIX,
    ProxyHeader,
    ProxyHeaderError,
    header_length,
    parse_header,
)
from interlock.logs import get_logger

__all__ = ["HEADER_SECONDS", "ProxyProtocolSite"]

_log = get_logger("interlock.gateway")
HEADER_SECONDS: Final = 5.0  # a proxy writes its header at once; a slow one holds a socket


class ProxyProtocolSite(web.BaseSite):
    """Serve ``runner``'s server over TLS on ``host``:``port``, PROXY v2 from ``proxies``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        proxies: TrustedProxies,
        backlog: int = 128,
        reuse_port: bool = False,
        handshake_seconds: float = 60.0,
    ) -> None:
        """Listen once :meth:`start` is called; ``proxies`` must write a header first.

        The TLS handshake must be done within ``handshake_seconds`` (default: as
        aiohttp's ``TCPSite``; serve passes the first-byte deadline).
        """
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self._handshake_seconds = handshake_seconds
        self._proxies = proxies
        self._tls = ssl_context

    @property
    def name(self) -> str:
        """The site's URL, as aiohttp names sites."""
        return f"https://{self._host}:{self._port} (PROXY v2)"

    async def start(self) -> None:
        """Bind and start accepting."""
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("call runner.setup() before starting a site")
        found = await asyncio.get_running_loop().getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM
        )
        family = found[0][0]
        listening = socket.create_server(
            (self._host, self._port),
            family=family,
            backlog=self._backlog,
            reuse_port=self._reuse_port,
        )
        listening.setblocking(False)
        self._server = _Acceptor(
            listening, server, self._tls, self._proxies, self._handshake_seconds
        )


class _Acceptor(asyncio.AbstractServer):
    """Accepts connections; each gets its PROXY header read (if due) and then TLS."""

    def __init__(
        self,
        listening: socket.socket,
        server: web.Server,
        tls: ssl.SSLContext,
        proxies: TrustedProxies,
        handshake_seconds: float,
    ) -> None:
        self.sockets = (listening,)  # read by ServerRunner.addresses
        self._listening = listening
        self._server = server
        self._tls = tls
        self._proxies = proxies
        self._handshake_seconds = handshake_seconds
        self._loop = asyncio.get_running_loop()
        self._opening: set[asyncio.Task[None]] = set()
        self._task = self._loop.create_task(self._accept())

    def close(self) -> None:
        self._task.cancel()
        for task in self._opening:
            task.cancel()
        self._listening.close()

    async def wait_closed(self) -> None:
        await asyncio.gather(self._task, *self._opening, return_exceptions=True)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return not self._task.done()

    async def start_serving(self) -> None:
        """Serving starts at construction."""

    async def serve_forever(self) -> None:
        await self._task

    async def _accept(self) -> None:
        while True:
            try:
                connection, address = await self._loop.sock_accept(self._listening)
            except OSError as exc:  # e.g. out of file descriptors: keep the listener up
                _log.warning("accept failed", error=type(exc).__name__)
                await asyncio.sleep(0.1)
                continue
            task = self._loop.create_task(self._open(connection, address))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    async def _open(self, connection: socket.socket, address: Any) -> None:
        peer = str(address[0]) if isinstance(address, tuple) else None
        header = None
        try:
            if self._proxies.trusts_peer(peer):
                header = await asyncio.wait_for(
                    _read_header(self._loop, connection), HEADER_SECONDS
                )
        except (OSError, TimeoutError, ProxyHeaderError) as exc:
            _log.warning(
                "connection from a trusted proxy closed: no valid PROXY v2 header",
                error=type(exc).__name__,
                reason=str(exc) if isinstance(exc, ProxyHeaderError) else None,
            )
            connection.close()
            return
        except asyncio.CancelledError:  # the listener is closing
            connection.close()
            raise
        handler = self._server()
        if header is not None and header.source is not None:
            report_peer(handler, str(header.source))
        try:
            await self._loop.connect_accepted_socket(
                lambda: handler,
                connection,
                ssl=self._tls,
                ssl_handshake_timeout=self._handshake_seconds,
            )
        except OSError as exc:  # a failed TLS handshake (ssl.SSLError): debug, as asyncio does
            _log.debug("TLS handshake failed", error=type(exc).__name__)
            connection.close()


async def _read_header(loop: asyncio.AbstractEventLoop, connection: socket.socket) -> ProxyHeader:
    """Exactly the header's bytes: what follows is the client's TLS handshake."""
    prefix = await _receive(loop, connection, HEADER_PREFIX)
    rest = await _receive(loop, connection, header_length(prefix) - HEADER_PREFIX)
    return parse_header(prefix + rest)


async def _receive(loop: asyncio.AbstractEventLoop, connection: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(connection, size - len(data))
        if not chunk:
            raise ProxyHeaderError("the connection ended inside the header")
        data += chunk
    return bytes(data)
