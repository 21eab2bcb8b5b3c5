"""The gateway's upstream client against a real TLS server that answers byte for byte.

Each test scripts the upstream's answers (valid, malformed, smuggling, silent,
closing) and checks what the client sends, what it returns and whether it
reuses the connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from multidict import CIMultiDict

from interlock.gateway.upstream_http import (
    MAX_HEADER_BYTES,
    MAX_INTERIM,
    ConnectionPool,
    Origin,
    UpstreamProtocolError,
    UpstreamResponse,
    UpstreamTooLargeError,
)
from interlock.testing.tls import LocalTls, make_tls

T = TypeVar("T")
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
SILENT = b""  # answer nothing, keep the connection open
CLOSE = b"<close>"  # close the connection without answering
TRICKLE = b"<trickle>"  # a prefix: the rest is sent a byte every 0.1 s
SLOW = b"<slow>"  # a prefix: the rest is sent after 0.3 s


@dataclass
class Upstream:
    """A TLS server answering each request with the next scripted reply."""

    replies: list[bytes]
    seen: list[tuple[int, bytes]] = field(default_factory=list)  # (connection, request)
    connections: int = 0
    close_after: set[int] = field(default_factory=set)  # request numbers to close after
    ended: int = 0  # connections over (the client closed them, or the script did)
    received: asyncio.Event = field(default_factory=asyncio.Event)  # a request was read
    over: asyncio.Event = field(default_factory=asyncio.Event)  # a connection ended

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: read requests, answer from the script."""
        number = self.connections
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                body = await reader.readexactly(length)
                self.seen.append((number, head + body))
                self.received.set()
                reply = self.replies.pop(0)
                if reply == CLOSE:
                    break
                if reply == SILENT:
                    await asyncio.sleep(30)
                if reply.startswith(TRICKLE):
                    for byte in reply.removeprefix(TRICKLE):
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(0.1)
                    continue
                if reply.startswith(SLOW):
                    await asyncio.sleep(0.3)
                    reply = reply.removeprefix(SLOW)
                writer.write(reply)
                await writer.drain()
                if len(self.seen) in self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.ended += 1
            self.over.set()
            writer.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    """A CA and a certificate for localhost, made now."""
    return make_tls(tmp_path_factory.mktemp("tls"))


@asynccontextmanager
async def running(upstream: Upstream, tls: LocalTls) -> AsyncIterator[int]:
    """``upstream`` listening on 127.0.0.1; its port."""
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0, ssl=tls.server_context())
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def pool_for(
    port: int,
    tls: LocalTls,
    *,
    host: str = "localhost",
    read_seconds: float = 5.0,
    size: int = 4,
    total_seconds: float = 60.0,
) -> ConnectionPool:
    """A pool to the test upstream, trusting only the test CA."""
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    return ConnectionPool(
        Origin.of(f"https://{host}:{port}/base"),
        context,
        size=size,
        connect_seconds=5,
        read_seconds=read_seconds,
        total_seconds=total_seconds,
    )


def scenario(
    tls: LocalTls,
    replies: list[bytes],
    body: Callable[[ConnectionPool, Upstream], Awaitable[T]],
    **options: float | str,
) -> tuple[T, Upstream]:
    """Run ``body`` against an upstream answering ``replies``."""
    upstream = Upstream(list(replies))

    async def run() -> T:
        async with running(upstream, tls) as port:
            pool = pool_for(port, tls, **options)  # type: ignore[arg-type]
            try:
                return await body(pool, upstream)
            finally:
                pool.close()

    return asyncio.run(run()), upstream


async def get(pool: ConnectionPool, target: str = "/base/orders/1", **kw: int) -> UpstreamResponse:
    """GET ``target`` with a 1 MiB cap."""
    return await pool.request("GET", target, CIMultiDict(), max_body=kw.get("cap", 1 << 20))


def test_a_connection_is_kept_alive_and_reused(tls: LocalTls) -> None:
    """Two requests, one connection; the answer's status, headers and body come back."""

    async def body(pool: ConnectionPool, _: Upstream) -> list[UpstreamResponse]:
        return [await get(pool), await get(pool)]

    answers, upstream = scenario(tls, [OK, OK], body)
    assert [(a.status, a.body, a.headers["content-type"]) for a in answers] == [
        (200, b"{}", "application/json")
    ] * 2
    assert [number for number, _ in upstream.seen] == [0, 0]
    assert upstream.seen[0][1].startswith(b"GET /base/orders/1 HTTP/1.1\r\nHost: localhost:")


def test_the_callers_framing_headers_are_replaced_by_the_clients(tls: LocalTls) -> None:
    """Host, Content-Length, Transfer-Encoding and Connection are never the caller's."""
    headers = CIMultiDict(
        {
            "Host": "evil.example",
            "Content-Length": "999",
            "Transfer-Encoding": "chunked",
            "Connection": "close",
            "X-Kept": "yes",
        }
    )

    async def body(pool: ConnectionPool, _: Upstream) -> UpstreamResponse:
        return await pool.request("POST", "/base/orders", headers, b"abcd", max_body=100)

    _, upstream = scenario(tls, [OK], body)
    sent = upstream.seen[0][1]
    head = sent.split(b"\r\n\r\n")[0].lower().split(b"\r\n")
    assert b"host: evil.example" not in head
    assert b"content-length: 4" in head
    assert b"content-length: 999" not in head
    assert not [line for line in head if line.startswith((b"transfer-encoding", b"connection"))]
    assert b"x-kept: yes" in head
    assert sent.endswith(b"\r\n\r\nabcd")


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("GET", "/a", {"X-A": "1\r\nX-Injected: 2"}),
        ("GET", "/a", {"X-A": "1\nX-Injected: 2"}),
        ("GET", "/a", {"X-A": "nul\x00"}),
        ("GET", "/a", {"X A": "1"}),
        ("GET", "/a HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /b", {}),
        ("GET", "/a b", {}),
        ("GET", "http://elsewhere/a", {}),
        ("GET /a HTTP/1.1\r\n", "/a", {}),
    ],
)
def test_a_request_that_could_inject_is_refused_before_a_byte_is_sent(
    tls: LocalTls, method: str, target: str, headers: dict[str, str]
) -> None:
    """CR, LF, NUL, spaces in the target, non-token names or methods: ValueError, no connection."""

    async def body(pool: ConnectionPool, _: Upstream) -> None:
        with pytest.raises(ValueError, match=r"method|target|header"):
            await pool.request(method, target, CIMultiDict(headers), max_body=100)

    _, upstream = scenario(tls, [OK], body)
    assert upstream.connections == 0


@pytest.mark.parametrize(
    "answer",
    [
        # Both framings (RFC 9112 §6.3: a smuggling signature): refused, not guessed.
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x",
        b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 2\r\n\r\n{}",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        # A status outside 100-599 would be relayed as a malformed status line.
        b"HTTP/1.1 000 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        # Transfer codings other than chunked alone: relayed still coded, or framed by close.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ],
)
def test_a_malformed_or_ambiguous_answer_is_an_error_and_ends_the_connection(
    tls: LocalTls, answer: bytes
) -> None:
    """Strict framing: the answer is refused and the next request gets a new connection."""

    async def body(pool: ConnectionPool, _: Upstream) -> UpstreamResponse:
        with pytest.raises(UpstreamProtocolError):
            await get(pool)
        return await get(pool)

    answer_after, upstream = scenario(tls, [answer, OK], body)
    assert answer_after.status == 200
    assert [number for number, _ in upstream.seen] == [0, 1]


def test_a_second_answer_nobody_asked_for_is_not_kept_for_the_next_request(
    tls: LocalTls,
) -> None:
    """An extra answer behind the first (desync) closes the connection; it is never relayed."""
    forged = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"

    async def body(pool: ConnectionPool, _: Upstream) -> list[UpstreamResponse]:
        return [await get(pool), await get(pool)]

    answers, upstream = scenario(tls, [OK + forged, OK], body)
    assert [a.body for a in answers] == [b"{}", b"{}"]
    assert [number for number, _ in upstream.seen] == [0, 1]


def test_interim_answers_are_skipped(tls: LocalTls) -> None:
    """100 Continue and 103 Early Hints come before the answer; the answer is returned."""
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"

    async def body(pool: ConnectionPool, _: Upstream) -> UpstreamResponse:
        return await get(pool)

    answer, _ = scenario(tls, [interim + OK], body)
    assert (answer.status, answer.body, "link" in answer.headers) == (200, b"{}", False)


def test_a_head_answer_is_not_waited_for_and_its_connection_is_not_reused(
    tls: LocalTls,
) -> None:
    """HEAD: Content-Length names the GET's body, which never comes."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"

    async def body(pool: ConnectionPool, _: Upstream) -> list[UpstreamResponse]:
        first = await pool.request("HEAD", "/base/a", CIMultiDict(), max_body=1 << 20)
        return [first, await get(pool)]

    answers, upstream = scenario(tls, [head, OK], body, read_seconds=2)
    assert [(a.status, a.body) for a in answers] == [(200, b""), (200, b"{}")]
    assert [number for number, _ in upstream.seen] == [0, 1]


def test_a_body_without_length_ends_with_the_connection(tls: LocalTls) -> None:
    """Neither Content-Length nor chunked: the body is what came before the upstream closed."""

    async def body(pool: ConnectionPool, _: Upstream) -> UpstreamResponse:
        return await get(pool)

    upstream = Upstream([b"HTTP/1.1 200 OK\r\n\r\nuntil close"], close_after={1})

    async def run() -> UpstreamResponse:
        async with running(upstream, tls) as port:
            pool = pool_for(port, tls)
            try:
                return await body(pool, upstream)
            finally:
                pool.close()

    answer = asyncio.run(run())
    assert (answer.status, answer.body) == (200, b"until close")


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n" + b"x" * 101,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"32\r\n"
        + b"x" * 50
        + b"\r\n"
        + b"33\r\n"
        + b"x" * 51
        + b"\r\n0\r\n\r\n",
    ],
)
def test_an_answer_over_the_cap_is_refused(tls: LocalTls, answer: bytes) -> None:
    """Declared or chunked, 101 bytes against a cap of 100: UpstreamTooLargeError, never truncated."""

    async def body(pool: ConnectionPool, _: Upstream) -> None:
        with pytest.raises(UpstreamTooLargeError):
            await get(pool, cap=100)

    scenario(tls, [answer], body)


def test_a_chunked_answer_within_the_cap_is_read_whole(tls: LocalTls) -> None:
    """Chunks are joined; trailers are not headers of the answer."""
    answer = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{"\r\n1\r\n}\r\n0\r\n\r\n'

    async def body(pool: ConnectionPool, _: Upstream) -> UpstreamResponse:
        return await get(pool, cap=100)

    answered, _ = scenario(tls, [answer], body)
    assert answered.body == b'{"}'


def test_too_many_header_bytes_are_refused(tls: LocalTls) -> None:
    """More header bytes than MAX_HEADER_BYTES: a protocol error, not an unbounded list."""
    big = b"".join(
        b"X-Filler-%d: %s\r\n" % (i, b"y" * 1000) for i in range(MAX_HEADER_BYTES // 1000 + 2)
    )
    answer = b"HTTP/1.1 200 OK\r\n" + big + b"Content-Length: 2\r\n\r\n{}"

    async def body(pool: ConnectionPool, _: Upstream) -> None:
        with pytest.raises(UpstreamProtocolError, match="header bytes"):
            await get(pool)

    scenario(tls, [answer], body)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nX-Endless: " + b"y" * (MAX_HEADER_BYTES + 32 * 1024),
        b"HTTP/1.1 200 " + b"O" * (MAX_HEADER_BYTES + 32 * 1024),
    ],
)
def test_a_header_line_that_never_ends_is_refused(tls: LocalTls, answer: bytes) -> None:
    """A field or status line that keeps growing: refused once past the cap, not buffered on."""

    async def body(pool: ConnectionPool, _: Upstream) -> None:
        with pytest.raises(UpstreamProtocolError, match="header bytes"):
            await get(pool)

    scenario(tls, [answer], body)


def test_endless_interim_answers_are_refused(tls: LocalTls) -> None:
    """More than MAX_INTERIM 1xx answers before the final one: a protocol error."""
    interims = b"HTTP/1.1 102 Processing\r\n\r\n" * (MAX_INTERIM + 1)

    async def body(pool: ConnectionPool, _: Upstream) -> None:
        with pytest.raises(UpstreamProtocolError, match="interim"):
            await get(pool)

    scenario(tls, [interims + OK], body)


def test_trailers_do_not_become_headers_of_the_answer(tls: LocalTls) -> None:
    """A chunked answer's trailer fields are read past, never relayed as headers."""
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\r\n"
        b"2\r\n{}\r\n0\r\nX-Trailer: smuggled\r\n\r\n"
    )

    async def body(pool: ConnectionPool, _: Upstream) -> list[UpstreamResponse]:
        return [await get(pool), await get(pool)]

    answers, upstream = scenario(tls, [answer, OK], body)
    assert answers[0].body == b"{}"
    assert "x-trailer" not in answers[0].headers
    assert [number for number, _ in upstream.seen] == [0, 0]


def test_a_silent_upstream_times_out(tls: LocalTls) -> None:
    """Nothing within read_seconds: TimeoutError."""

    async def body(pool: ConnectionPool, _: Upstream) -> None:
        with pytest.raises(TimeoutError):
            await get(pool)

    scenario(tls, [SILENT], body, read_seconds=0.3)


def test_an_upstream_that_trickles_its_answer_is_cut_at_the_overall_deadline(
    tls: LocalTls,
) -> None:
    """A byte every 0.1 s never trips the read (inactivity) timeout: total_seconds does.

    Before, such an answer could run for ever — past an Idempotency-Key's lease.
    """

    async def body(pool: ConnectionPool, _: Upstream) -> None:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await get(pool)
        # The deadline (0.8 s) with room for a loaded machine; unbounded before.
        assert asyncio.get_running_loop().time() - started < 5

    scenario(tls, [TRICKLE + OK * 10], body, read_seconds=0.5, total_seconds=0.8)


def test_the_wait_for_a_pool_slot_counts_against_the_overall_deadline(tls: LocalTls) -> None:
    """A request queued behind a saturated pool gives up at total_seconds (was unbounded)."""

    async def body(pool: ConnectionPool, upstream: Upstream) -> None:
        holder = asyncio.create_task(get(pool))  # holds the one slot: the upstream is silent
        await asyncio.sleep(0)  # the holder runs up to its connect, the slot taken
        assert not upstream.seen
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await get(pool)
        assert asyncio.get_running_loop().time() - started < 5  # was the holder's 10 s, or more
        with pytest.raises(TimeoutError):
            await holder

    scenario(tls, [SILENT, SILENT], body, size=1, read_seconds=10, total_seconds=0.5)


def test_a_connection_whose_exchange_outlives_the_pool_is_closed(tls: LocalTls) -> None:
    """The pool closes (the gateway stops) mid-exchange: the answer comes, then the connection ends.

    Before, a reusable connection was neither put back (the pool was closed)
    nor closed: it stayed open to the upstream until the garbage collector
    found it, as an "unclosed transport" warning.
    """

    async def body(pool: ConnectionPool, upstream: Upstream) -> UpstreamResponse:
        answer = asyncio.create_task(get(pool))
        await upstream.received.wait()
        pool.close()
        response = await answer
        async with asyncio.timeout(5):
            await upstream.over.wait()
        return response

    response, upstream = scenario(tls, [SLOW + OK], body)
    assert (response.status, upstream.connections, upstream.ended) == (200, 1, 1)


def test_a_connection_made_while_the_pool_closes_is_closed_after_its_exchange(
    tls: LocalTls,
) -> None:
    """The pool closes while a request is still connecting: that connection ends too."""

    async def body(pool: ConnectionPool, upstream: Upstream) -> UpstreamResponse:
        answer = asyncio.create_task(get(pool))
        await asyncio.sleep(0)  # the request runs up to its connect
        assert not upstream.connections
        pool.close()
        response = await answer
        async with asyncio.timeout(5):
            await upstream.over.wait()
        with pytest.raises(ConnectionError):
            await get(pool)  # a closed pool takes no new request
        return response

    response, upstream = scenario(tls, [OK], body)
    assert (response.status, upstream.connections, upstream.ended) == (200, 1, 1)


def test_a_closed_keep_alive_connection_is_retried_for_get_only(tls: LocalTls) -> None:
    """The upstream drops a pooled connection unanswered: GET is retried once, POST is not."""

    async def body(pool: ConnectionPool, _: Upstream) -> tuple[UpstreamResponse, UpstreamResponse]:
        first = await get(pool)
        retried = await get(pool)  # CLOSE on the reused connection, then OK on a new one
        await get(pool)  # the new connection is pooled
        with pytest.raises(ConnectionError):
            await pool.request("POST", "/base/a", CIMultiDict(), b"{}", max_body=100)
        return first, retried

    (first, retried), upstream = scenario(tls, [OK, CLOSE, OK, OK, CLOSE], body)
    assert (first.status, retried.status) == (200, 200)
    assert [number for number, _ in upstream.seen] == [0, 0, 1, 1, 1]


def test_a_new_connection_closed_unanswered_is_retried_for_get_only(tls: LocalTls) -> None:
    """Refused after the handshake (a certificate mid-renewal): GET once more, POST never."""

    async def body(pool: ConnectionPool, _: Upstream) -> UpstreamResponse:
        retried = await get(pool)  # CLOSE on a new connection, then OK on another
        pool.close()
        fresh = pool_for(_port(pool), tls)
        try:
            with pytest.raises(ConnectionError):
                await fresh.request("POST", "/base/a", CIMultiDict(), b"{}", max_body=100)
        finally:
            fresh.close()
        return retried

    retried, upstream = scenario(tls, [CLOSE, OK, CLOSE, OK], body)
    assert retried.status == 200
    assert [number for number, _ in upstream.seen] == [0, 1, 2]
    assert upstream.replies == [OK]  # the POST was sent once


def _port(pool: ConnectionPool) -> int:
    return pool.origin.port


def test_a_certificate_not_for_the_host_is_refused(tls: LocalTls, tmp_path: Path) -> None:
    """Asked by IP for a certificate naming localhost, or as localhost for erp.internal: refused."""

    async def body(pool: ConnectionPool, _: Upstream) -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await get(pool)

    scenario(tls, [OK], body, host="127.0.0.1")
    scenario(make_tls(tmp_path / "other", hosts=("erp.internal",)), [OK], body)


def test_a_certificate_from_another_ca_is_refused(tls: LocalTls, tmp_path: Path) -> None:
    """An upstream presenting a certificate the pool's context does not trust: refused."""
    stranger = make_tls(tmp_path / "stranger", name="Stranger CA")
    upstream = Upstream([OK])

    async def run() -> None:
        async with running(upstream, stranger) as port:
            pool = pool_for(port, tls)
            with pytest.raises(ssl.SSLCertVerificationError):
                await get(pool)
            pool.close()

    asyncio.run(run())
    assert upstream.seen == []


def test_origin_of_a_system_url() -> None:
    """Host, port (443 by default), the Host value and the base path without its last slash."""
    assert Origin.of("https://erp.example/api/") == Origin(
        "erp.example", 443, "erp.example", "/api"
    )
    assert Origin.of("https://[::1]:8443") == Origin("::1", 8443, "[::1]:8443", "")
    with pytest.raises(ValueError, match="https"):
        Origin.of("http://erp.example")
