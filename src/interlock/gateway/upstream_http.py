"""HTTP/1.1 to one upstream system: a keep-alive pool over verified TLS, parsed by llhttp.

The gateway forwards every request through here. aiohttp's client did the
same work at about four times the cost per request (measured in
``benchmarks/gateway``: a bare aiohttp proxy with its client spent ~325 µs per
forwarded request on the client side, this pool ~70 µs on the 2-core machine),
and the client was the largest cost on the gateway's event loop. Responses
are parsed by ``httptools`` (the llhttp parser that Node.js and aiohttp's
own C parser use); this module frames requests and manages connections.

What it guarantees:

* **TLS** with the caller's context only: verification and host-name checks
  are the context's and nothing here relaxes them; SNI and the check use the
  URL's host.
* **Requests** are written from validated parts, or not at all: the method
  is a token, the target holds no space or control character, header names
  are tokens and values hold no CR, LF or NUL (``ValueError`` before a byte
  is sent). ``Host``, ``Content-Length``, ``Transfer-Encoding`` and
  ``Connection`` are this module's to set; the caller's are dropped. Bodies
  are sent with ``Content-Length`` (the gateway has read them whole).
* **Responses** are framed strictly by llhttp: conflicting lengths,
  ``Transfer-Encoding`` tricks and bad chunks are :class:`UpstreamProtocolError`
  and the connection is closed. Interim 1xx answers are skipped, ``101`` is
  refused, a ``HEAD`` answer's body is never read (that connection is then
  closed), and a response with neither length nor chunking ends when the
  upstream closes.
* **Bounds**: an overall deadline per request (``total_seconds``: the wait
  for a free connection, connecting, sending and reading the whole answer —
  an upstream trickling a byte a second never trips the inactivity timeout,
  and a saturated pool would otherwise queue a request for ever), connect
  (TCP and TLS handshake), read inactivity, header bytes
  (:data:`MAX_HEADER_BYTES`) and count (:data:`MAX_HEADERS`), body bytes (the
  caller's cap, :class:`UpstreamTooLargeError`, checked against ``Content-Length``
  before the body arrives and while it does).
* **Connections**: at most ``size`` per system; idle ones are reused newest
  first and closed after ``idle_seconds``. A request whose connection the
  upstream closed before any byte of an answer (a stale kept-alive one, or a
  new one refused after the handshake, as during a client certificate's
  renewal) is sent once more on a new connection, for idempotent methods only
  (RFC 9110 §9.2.2, as aiohttp's client did); any other failure is raised.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_INTERIM",
    "ConnectionPool",
    "Origin",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "UpstreamTooLargeError",
]

MAX_HEADER_BYTES: Final = 64 * 1024
"""The most bytes of response header names and values taken."""
MAX_HEADERS: Final = 128
"""The most response header fields taken."""
MAX_INTERIM: Final = 8
"""The most interim (1xx) answers taken before the final one."""
# Bytes of a head in transit (status line, fields, line ends): the fields' cap and slack.
_MAX_HEAD_RECEIVED: Final = MAX_HEADER_BYTES + 16 * 1024

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE_VALUE: Final = re.compile(r"[\r\n\x00]")
_UNSAFE_TARGET: Final = re.compile(r"[\x00-\x20\x7f]")
_FRAMING: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_SWITCHING_PROTOCOLS: Final = 101
_NO_BODY_STATUSES: Final = frozenset({204, 304})
_MIN_STATUS: Final = 100
_MAX_STATUS: Final = 599
_VERSIONS: Final = frozenset({"1.1", "1.0"})


class UpstreamProtocolError(Exception):
    """The upstream's answer is not HTTP/1.1 as this client takes it."""


class UpstreamTooLargeError(Exception):
    """The upstream's answer is larger than the cap."""


class _UnansweredError(ConnectionError):
    """The connection closed before any byte of an answer arrived."""


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """An upstream's final answer, read whole."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a system's requests go: host, port, the ``Host`` value and the base path."""

    host: str
    port: int
    authority: str
    base_path: str

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an ``https://`` URL (the manifest's system URL)."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"not an https URL with a host: {url!r}")
        port = parts.port or 443
        return cls(parts.hostname, port, parts.netloc, parts.path.rstrip("/"))


def request_head(
    method: str, target: str, authority: str, headers: CIMultiDict[str], body_length: int
) -> bytes:
    """The request line and header block, or ``ValueError`` for a part that could inject."""
    if _TOKEN.fullmatch(method) is None:
        raise ValueError("the method is not an HTTP token")
    if not target.startswith("/") or _UNSAFE_TARGET.search(target) is not None:
        raise ValueError("the request target holds a space or a control character")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {authority}"]
    for name, value in headers.items():
        if name.lower() in _FRAMING:
            continue
        if _TOKEN.fullmatch(name) is None or _UNSAFE_VALUE.search(value) is not None:
            raise ValueError(f"header {name!r} cannot be sent as it is")
        lines.append(f"{name}: {value}")
    if body_length or method in _BODY_METHODS:
        lines.append(f"Content-Length: {body_length:d}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8")


class _Connection(asyncio.Protocol):
    """One connection and the exchange under way on it (one at a time)."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._begin(head=False, max_body=0, now=0.0)

    def _begin(self, *, head: bool, max_body: int, now: float) -> None:
        """The state of a new exchange (the message's own is reset as each message begins)."""
        self._head_request = head
        self._max_body = max_body
        self._received = False
        self._interim = False
        self._interims = 0
        self._in_head = True
        self._head_received = 0
        self._until_close = False
        self._failure: BaseException | None = None
        self.reusable = False
        self._last_read = now

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (uvloop's are not asyncio.Transport subclasses, but write alike)."""
        self._transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """End the exchange: complete when the body ran until close, else fail."""
        self.closed = True
        self.reusable = False
        if self._waiter is None or self._waiter.done():
            return
        if self._until_close and exc is None and self._failure is None:
            self._resolve()
        elif not self._received:
            self._fail(_UnansweredError("the upstream closed the connection before answering"))
        else:
            self._fail(exc or ConnectionResetError("the upstream closed the connection mid-answer"))

    def data_received(self, data: bytes) -> None:
        """Feed the parser; an answer nobody asked for ends the connection."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.close()  # unsolicited bytes: never parsed as a later answer
            return
        self._received = True
        self._last_read = asyncio.get_running_loop().time()
        try:
            self._parser.feed_data(data)
            if self._in_head:  # no header line grows without bound (llhttp keeps no limit)
                self._head_received += len(data)
                if self._head_received > _MAX_HEAD_RECEIVED:
                    self._failure = self._failure or UpstreamProtocolError("too many header bytes")
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(self._failure or UpstreamProtocolError(f"malformed answer: {exc}"))
        else:
            if self._failure is not None:
                self._fail(self._failure)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        """A new message (interim or the answer); one after the answer ends the connection."""
        if self._waiter is None or self._waiter.done():
            self._failure = UpstreamProtocolError("an answer nobody asked for")
            self.close()
        self._headers = []
        self._header_bytes = 0
        self._in_head = True
        self._body = []
        self._body_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header field, bounded in count and size (a trailer is counted, not kept)."""
        self._header_bytes += len(name) + len(value)
        if len(self._headers) >= MAX_HEADERS or self._header_bytes > MAX_HEADER_BYTES:
            self._failure = self._failure or UpstreamProtocolError("too many header bytes")
            return
        if self._in_head:
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        """Decide how the body ends; answer a HEAD at once."""
        self._in_head = False
        self._head_received = 0
        if self._failure is None:
            self._failure = self._head_refused()
        if self._failure is not None or self._interim:
            return
        length = _content_length(self._headers)
        if length is not None and length > self._max_body:
            self._failure = UpstreamTooLargeError()
            return
        if self._head_request:
            self._resolve(reusable=False)
            return
        codings = [value for name, value in self._headers if name.lower() == b"transfer-encoding"]
        chunked = bool(codings)
        if chunked and (len(codings) > 1 or codings[0].strip().lower() != b"chunked"):
            # Only chunked is taken (RFC 9112 §6.1: a server sends no other coding the
            # client did not ask for in TE); "gzip, chunked" would be relayed still gzip
            # coded, and a coding after chunked leaves the length to the connection's close.
            self._failure = UpstreamProtocolError("a transfer coding other than chunked")
            return
        self._until_close = length is None and not chunked and self._status not in _NO_BODY_STATUSES

    def _head_refused(self) -> UpstreamProtocolError | None:
        """Take the status of a head; why it is no answer, if it is not one."""
        status = self._parser.get_status_code()
        self._status = status
        self._interim = False
        if not _MIN_STATUS <= status <= _MAX_STATUS:
            # RFC 9110 §15: 100-599; a status the caller cannot be sent is no answer.
            return UpstreamProtocolError(f"invalid status code {status}")
        if self._parser.get_http_version() not in _VERSIONS:
            return UpstreamProtocolError("not an HTTP/1.x answer")
        if status == _SWITCHING_PROTOCOLS:
            return UpstreamProtocolError("the upstream switched protocols")
        self._interim = status < 200  # RFC 9110 §15.2: informational
        if self._interim:
            self._interims += 1
            if self._interims > MAX_INTERIM:
                return UpstreamProtocolError("too many interim answers")
        return None

    def on_body(self, body: bytes) -> None:
        """Body bytes, bounded by the cap."""
        if self._failure is not None or self._interim:
            return
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body:
            self._failure = UpstreamTooLargeError()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        """The answer is whole (an interim one: wait for the next)."""
        if self._failure is not None:
            return
        if self._interim:
            self._interim = False
            return
        self._until_close = False
        self._resolve(reusable=bool(self._parser.should_keep_alive()))

    # -- the exchange

    async def exchange(
        self, data: bytes, *, head: bool, max_body: int, read_seconds: float
    ) -> UpstreamResponse:
        """Send ``data`` (head and body) and wait for the final answer."""
        transport = self._transport
        if transport is None or self.closed:
            raise _UnansweredError("the connection is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[UpstreamResponse] = loop.create_future()
        self._waiter = waiter
        self._begin(head=head, max_body=max_body, now=loop.time())
        timer = loop.call_later(read_seconds, self._check_idle, read_seconds)
        try:
            transport.write(data)
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None
            if not self.reusable:
                self.close()

    def _check_idle(self, read_seconds: float) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self._last_read
        if quiet >= read_seconds:
            self._fail(TimeoutError("the upstream sent nothing within the read timeout"))
        else:
            loop.call_later(read_seconds - quiet, self._check_idle, read_seconds)

    def _resolve(self, *, reusable: bool = False) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        self.reusable = reusable and not self.closed
        headers: CIMultiDict[str] = CIMultiDict(
            (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
            for name, value in self._headers
        )
        body = b"".join(self._body)
        self._body = []
        waiter.set_result(UpstreamResponse(self._status, CIMultiDictProxy(headers), body))

    def _fail(self, exc: BaseException) -> None:
        self.reusable = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.close()


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value)  # llhttp has refused a malformed or conflicting one
    return None


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one origin over TLS."""

    def __init__(
        self,
        origin: Origin,
        context: ssl.SSLContext,
        *,
        size: int,
        connect_seconds: float,
        read_seconds: float,
        total_seconds: float = 60.0,
        idle_seconds: float = 15.0,
    ) -> None:
        """At most ``size`` connections to ``origin``, made with ``context``.

        A request taking longer than ``total_seconds`` in all, its wait for a
        connection included, raises ``TimeoutError``.
        """
        if size < 1:
            raise ValueError("a pool holds at least one connection")
        self.origin = origin
        self._context = context
        self._size = size
        self._connect_seconds = connect_seconds
        self._read_seconds = read_seconds
        self._total_seconds = total_seconds
        self._idle_seconds = idle_seconds
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: bytes = b"",
        *,
        max_body: int,
    ) -> UpstreamResponse:
        """Send one request to ``target`` (path and query, already encoded) and read the answer."""
        data = request_head(method, target, self.origin.authority, headers, len(body)) + body
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._size)
        # Cancelled at the deadline: a connection mid-exchange is closed (never reused).
        async with asyncio.timeout(self._total_seconds), self._slots:
            connection = await self._acquire()
            try:
                return await self._exchange(connection, data, method, max_body)
            except _UnansweredError:
                if method not in _IDEMPOTENT:
                    raise
            connection = await self._acquire(fresh=True)
            return await self._exchange(connection, data, method, max_body)

    async def _exchange(
        self, connection: _Connection, data: bytes, method: str, max_body: int
    ) -> UpstreamResponse:
        response = await connection.exchange(
            data, head=method == "HEAD", max_body=max_body, read_seconds=self._read_seconds
        )
        if connection.reusable and not self._closed:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
        else:  # the pool closed while this exchange (or its connect) was under way
            connection.close()
        return response

    async def _acquire(self, *, fresh: bool = False) -> _Connection:
        if self._closed:
            raise ConnectionError("the pool is closed")
        loop = asyncio.get_running_loop()
        idle = self._idle
        while idle and not fresh:
            connection = idle.pop()
            if not connection.closed and loop.time() - connection.idle_since < self._idle_seconds:
                return connection
            connection.close()
        origin = self.origin
        async with asyncio.timeout(self._connect_seconds):
            _, connection = await loop.create_connection(
                _Connection,
                origin.host,
                origin.port,
                ssl=self._context,
                server_hostname=origin.host,
                ssl_handshake_timeout=self._connect_seconds,
            )
        return connection

    def close(self) -> None:
        """Close the idle connections; those in use close when their exchange ends."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
