"""The listener's connections are bounded in time and number (issue 18 items 5 and 12a).

Before, a connection that sent nothing, or trickled its headers, stayed open
for minutes (aiohttp's default idle timeout is an hour; TLS handshakes had 60 s),
nothing capped how many connections one address held, and every answer named
``Python/3.11 aiohttp/3.14.5``. These tests talk raw sockets to real gateways:
one with short deadlines (fractions of a second), and the shared one with the
default settings for the connection cap.
"""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from ipaddress import IPv4Address

import pytest

from interlock.gateway.proxy_v2 import SIGNATURE
from interlock.testing.gateway import Env, running_gateway

pytestmark = pytest.mark.processes

# Generous bounds: each deadline under test is at most 1 s, the bound is ten times that.
_BOUND = 10.0
_TIGHT = {
    "listener_first_byte_seconds": 0.5,
    "listener_headers_seconds": 1.0,
    "listener_keepalive_seconds": 1.0,
}


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A gateway whose connection deadlines are short."""
    with running_gateway(tmp_path_factory.mktemp("tight"), more_settings=_TIGHT) as env:
        yield env


def _tls(env: Env, source: str = "127.0.0.1") -> ssl.SSLSocket:
    plain = socket.create_connection(
        ("127.0.0.1", env.port), timeout=_BOUND, source_address=(source, 0)
    )
    return env.context().wrap_socket(plain, server_hostname="127.0.0.1")


def _closed_by_peer(sock: socket.socket) -> bool:
    """Read until the peer closes (True) or the bound passes (False)."""
    sock.settimeout(_BOUND)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except (ConnectionResetError, ssl.SSLError):
        return True
    return True


def test_a_silent_tcp_connection_is_closed_by_the_handshake_deadline(tight: Env) -> None:
    """Connected, no TLS hello: closed within the first-byte deadline (was 60 s)."""
    with socket.create_connection(("127.0.0.1", tight.port), timeout=_BOUND) as plain:
        assert _closed_by_peer(plain)


def test_a_silent_tls_connection_is_closed_by_the_first_byte_deadline(tight: Env) -> None:
    """Handshake done, then nothing: closed within the first-byte deadline (was an hour)."""
    with _tls(tight) as tls:
        assert _closed_by_peer(tls)


def test_trickled_headers_are_cut_off_by_the_headers_deadline(tight: Env) -> None:
    """A byte every 0.1 s never completes the headers: closed although bytes keep coming."""
    trickle = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
    closed = False
    with _tls(tight) as tls:
        started = time.monotonic()
        for byte in trickle:
            if time.monotonic() - started > _BOUND:
                break
            try:
                tls.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                closed = True
                break
            readable, _, _ = select.select([tls], [], [], 0.1)
            if readable:
                closed = _closed_by_peer(tls)
                break
    assert closed, "the connection outlived the headers deadline"


def test_an_idle_kept_alive_connection_is_closed(tight: Env) -> None:
    """After an answered request, a kept-alive connection that stays idle is closed."""
    with _tls(tight) as tls:
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = tls.recv(65536)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"Connection: close" not in head  # kept alive: the idle deadline applies
        assert _closed_by_peer(tls)


def test_a_slow_but_steady_client_is_served(tight: Env) -> None:
    """Headers that arrive in pieces within the deadline are answered as usual."""
    with _tls(tight) as tls:
        tls.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.3)  # less than either deadline
        tls.sendall(b"Host: 127.0.0.1\r\n\r\n")
        assert tls.recv(65536).startswith(b"HTTP/1.1 200")


def test_connections_over_the_per_address_cap_are_answered_503(env: Env) -> None:
    """The default cap (100 per address): the 101st connection gets 503 and is closed."""
    cap = env.deployment.settings.listener_max_connections_per_address
    source = "127.0.0.77"  # an address of its own: no other test's connections count
    with ExitStack() as held:
        first = held.enter_context(_tls(env, source))
        for _ in range(cap - 1):
            held.enter_context(_tls(env, source))
        with _tls(env, source) as over:
            answer = b""
            while chunk := over.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), head
        assert b"Connection: close" in head
        problem = json.loads(body)
        assert problem["type"] == "urn:interlock:problem:too-many-connections"
        # The connections within the cap are served; another address is not limited.
        first.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert first.recv(65536).startswith(b"HTTP/1.1 200")
        assert env.request("GET", "/healthz", source="127.0.0.78")[0] == 200
    # Closed connections are no longer counted.
    deadline = time.monotonic() + _BOUND
    while env.request("GET", "/healthz", source=source)[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_the_server_header_names_no_versions(env: Env) -> None:
    """``Server: interlock``, never ``Python/3.11 aiohttp/3.14.5`` (routes, own endpoints, errors)."""
    token, _ = env.key(["orders.read"])
    for path, headers in (
        ("/healthz", {}),
        ("/orders/1001", {"X-API-Key": token}),
        ("/no/such/route", {"X-API-Key": token}),
    ):
        _, found, _ = env.request("GET", path, headers)
        assert found["server"] == "interlock", path
    answer = env.raw(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n")
    assert b"\r\nServer: interlock\r\n" in answer, answer
    assert b"aiohttp" not in answer
    assert b"Python" not in answer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(env: Env) -> Iterator[tuple[int, ssl.SSLContext]]:
    """``interlock serve`` as a process (on uvloop, as in production): one connection per
    address, short deadlines. Yields its port and a context trusting its CA."""
    settings = env.deployment.settings
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603  (our own CLI, fixed arguments)
        [
            sys.executable,
            "-m",
            "interlock",
            "serve",
            "--manifest",
            str(env.manifest_path),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env={
            **os.environ,
            "INTERLOCK_DATA_DIR": str(settings.data_dir),
            "INTERLOCK_DATABASE_URL": settings.store_url,
            "INTERLOCK_METRICS_LISTEN": "127.0.0.1:0",  # never 9464: tests run side by side
            "INTERLOCK_LOG_LEVEL": "error",
            "INTERLOCK_LISTENER_FIRST_BYTE_SECONDS": "0.5",
            "INTERLOCK_LISTENER_MAX_CONNECTIONS_PER_ADDRESS": "1",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        context = ssl.create_default_context(cafile=str(settings.data_dir / "ca.pem"))
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "serve exited"
            assert time.monotonic() < deadline, "serve did not start"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield port, context
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_on_uvloop_closes_silent_connections_and_answers_503_over_the_cap(
    served: tuple[int, ssl.SSLContext],
) -> None:
    """The same bounds hold on uvloop's TLS transport (its own classes and handshake)."""
    port, context = served

    def connect(source: str) -> ssl.SSLSocket:
        plain = socket.create_connection(
            ("127.0.0.1", port), timeout=_BOUND, source_address=(source, 0)
        )
        return context.wrap_socket(plain, server_hostname="127.0.0.1")

    with socket.create_connection(("127.0.0.1", port), timeout=_BOUND) as plain:
        assert _closed_by_peer(plain)
    with connect("127.0.0.91") as silent:
        assert _closed_by_peer(silent)
    with connect("127.0.0.92") as held, connect("127.0.0.92") as over:
        answer = over.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        held.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert held.recv(65536).startswith(b"HTTP/1.1 200")


@pytest.fixture(scope="module")
def behind_balancer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A gateway behind a PROXY v2 balancer at 127.0.0.1, one connection per client address."""
    with running_gateway(
        tmp_path_factory.mktemp("balanced"),
        trusted_proxies="127.0.0.1/32",
        proxy_protocol="v2",
        more_settings={"listener_max_connections_per_address": 1},
    ) as env:
        yield env


def _through_balancer(env: Env, client: str) -> ssl.SSLSocket:
    """A TLS connection from the balancer, its PROXY v2 header naming ``client``."""
    body = (
        IPv4Address(client).packed
        + IPv4Address("127.0.0.1").packed
        + struct.pack("!HH", 51000, env.port)
    )
    header = SIGNATURE + struct.pack("!BBH", 0x21, 0x11, len(body)) + body
    plain = socket.create_connection(("127.0.0.1", env.port), timeout=_BOUND)
    plain.sendall(header)
    return env.context().wrap_socket(plain, server_hostname="127.0.0.1")


def test_behind_a_proxy_v2_balancer_the_cap_counts_each_client_apart(
    behind_balancer: Env,
) -> None:
    """All connections come from the balancer; the cap applies to the clients it names."""
    env = behind_balancer
    with (
        _through_balancer(env, "198.51.100.1") as first,
        _through_balancer(env, "198.51.100.2") as second,
        _through_balancer(env, "198.51.100.1") as over,
    ):
        assert over.recv(65536).startswith(b"HTTP/1.1 503")
        for served in (first, second):
            served.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert served.recv(65536).startswith(b"HTTP/1.1 200")
