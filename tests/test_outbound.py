"""The outbound HTTPS client factory, against real local HTTPS servers with a CA made now.

Each property the module promises is checked on the wire: verification that
cannot be switched off, no redirects, HTTPS only, the User-Agent, every
timeout, client certificates, the size cap, and what the environment may and
may not change (proxies yes, the trust anchor no).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import select
import socket
import socketserver
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from interlock import __version__
from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import (
    certificate_pem,
    issue_client_certificate,
    issue_server_certificate,
    private_key_pem,
    self_signed_ca,
)
from interlock.errors import ConfigError
from interlock.outbound import (
    USER_AGENT,
    InsecureTransportError,
    ResponseTooLargeError,
    Timeouts,
    outbound_async_client,
    outbound_client,
    read_capped,
    signed_documents_client,
    tls_context,
)
from interlock.testing.tls import LocalTls, https_server, make_tls

FAST = Timeouts.every(5.0)
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


@dataclass
class Seen:
    """What the test server was asked."""

    paths: list[str]
    headers: list[dict[str, str]]
    certificates: list[object]


def _handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.paths.append(self.path)
            seen.headers.append(dict(self.headers.items()))
            seen.certificates.append(self.connection.getpeercert())
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/slow":
                time.sleep(1.0)
            body = b"x" * 4096 if self.path.startswith("/big") else b"ok"
            self.send_response(200)
            if self.path != "/big-undeclared":  # else the body ends when the connection does
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # A client that stopped reading (a size cap, a timeout) has closed: fine.
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    return Handler


@pytest.fixture
def tls(tmp_path: Path) -> LocalTls:
    """A CA made for this test and a certificate for ``localhost``."""
    return make_tls(tmp_path / "tls", "Outbound test CA")


@pytest.fixture
def server(tls: LocalTls) -> Iterator[tuple[str, Seen]]:
    """An HTTPS server presenting the test CA's certificate; its base URL and what it saw."""
    seen = Seen([], [], [])
    with https_server(_handler(seen), tls) as running:
        yield f"https://localhost:{running.server_address[1]}", seen


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without proxy or CA variables; a test sets the ones it is about."""
    for name in (*PROXY_VARIABLES, "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# -- verification ----------------------------------------------------------------


def test_the_test_ca_is_trusted_when_named_and_the_request_succeeds(
    tls: LocalTls, server: tuple[str, Seen]
) -> None:
    """The baseline: with the CA file as trust anchor, the server answers."""
    url, _ = server
    with outbound_client(trust=tls.ca_file, timeouts=FAST) as client:
        assert client.get(f"{url}/").text == "ok"


def test_a_server_the_system_store_does_not_vouch_for_is_refused(server: tuple[str, Seen]) -> None:
    """Trust ``None`` is the system store: a test CA's certificate fails verification."""
    url, seen = server
    with (
        outbound_client(trust=None, timeouts=FAST) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"{url}/")
    assert seen.paths == []


def test_a_certificate_from_another_ca_is_refused(tmp_path: Path, server: tuple[str, Seen]) -> None:
    """An explicit CA file is the only anchor: another CA's server is refused."""
    url, _ = server
    other = make_tls(tmp_path / "other", "Another CA").ca_file
    with (
        outbound_client(trust=other, timeouts=FAST) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"{url}/")


def test_the_host_name_is_checked(tls: LocalTls, server: tuple[str, Seen]) -> None:
    """The certificate names ``localhost``; reaching the same server as 127.0.0.1 is refused."""
    url, _ = server
    with (
        outbound_client(trust=tls.ca_file, timeouts=FAST) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(url.replace("localhost", "127.0.0.1") + "/")


def test_no_parameter_can_turn_verification_off() -> None:
    """The factory has no ``verify``/``unsafe`` switch, and unknown keywords are errors."""
    for factory in (outbound_client, outbound_async_client):
        parameters = set(inspect.signature(factory).parameters)
        assert parameters == {
            "trust",
            "timeouts",
            "client_certificate",
            "headers",
            "base_url",
            "auth",
        }
    with pytest.raises(TypeError):
        outbound_client(trust=None, timeouts=FAST, verify=False)  # type: ignore[call-arg]


def _unverifying(change: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if change in {"no-hostname", "cert-none", "cert-optional"}:
        context.check_hostname = False
    if change == "cert-none":
        context.verify_mode = ssl.CERT_NONE
    elif change == "cert-optional":
        context.verify_mode = ssl.CERT_OPTIONAL
    elif change == "tls1.0":
        with warnings.catch_warnings():  # Python itself deprecates TLS 1.0
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
    elif change == "any-version":
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    return context


@pytest.mark.parametrize(
    "change", ["no-hostname", "cert-none", "cert-optional", "tls1.0", "any-version"]
)
def test_a_context_that_does_not_verify_or_allows_old_tls_is_refused(change: str) -> None:
    """A ready SSLContext is accepted only if it verifies certificate and name, TLS 1.2+."""
    context = _unverifying(change)
    with pytest.raises(ConfigError):
        outbound_client(trust=context, timeouts=FAST)
    with pytest.raises(ConfigError):
        outbound_async_client(trust=context, timeouts=FAST)


def test_a_verifying_context_is_used_as_given(tls: LocalTls, server: tuple[str, Seen]) -> None:
    """A context from the caller (e.g. a manifest trust anchor) is accepted when it verifies."""
    url, _ = server
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    with outbound_client(trust=context, timeouts=FAST) as client:
        assert client.get(f"{url}/").status_code == 200


def test_tls_contexts_start_at_tls_1_2_and_cannot_go_lower() -> None:
    """``tls_context`` verifies, with TLS 1.2 as the floor; a lower floor is refused."""
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls_context(minimum=ssl.TLSVersion.TLSv1_3).minimum_version == ssl.TLSVersion.TLSv1_3
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.MINIMUM_SUPPORTED):
        with pytest.raises(ConfigError):
            tls_context(minimum=old)


# -- redirects, scheme, headers ------------------------------------------------------


def test_a_redirect_is_returned_not_followed(tls: LocalTls, server: tuple[str, Seen]) -> None:
    """A 302 comes back to the caller; the server is asked once, never at the new location."""
    url, seen = server
    with outbound_client(trust=tls.ca_file, timeouts=FAST) as client:
        response = client.get(f"{url}/redirect")
    assert response.status_code == 302
    assert response.headers["Location"] == "/elsewhere"
    assert seen.paths == ["/redirect"]


def test_a_redirect_is_not_followed_even_when_a_request_asks_for_it(
    tls: LocalTls, server: tuple[str, Seen]
) -> None:
    """httpx lets a request override ``follow_redirects``: it fails instead of following."""
    url, seen = server
    with (
        outbound_client(trust=tls.ca_file, timeouts=FAST) as client,
        pytest.raises(httpx.TooManyRedirects),
    ):
        client.get(f"{url}/redirect", follow_redirects=True)
    assert seen.paths == ["/redirect"]


def test_plain_http_is_refused_before_anything_is_sent() -> None:
    """An ``http://`` URL raises at once: nothing listens on the port, and nothing is tried."""
    with (
        outbound_client(trust=None, timeouts=FAST) as client,
        pytest.raises(InsecureTransportError, match="https"),
    ):
        client.get("http://127.0.0.1:9/")


def test_the_signed_documents_client_speaks_plain_http_and_takes_no_credential(
    tls: LocalTls, server: tuple[str, Seen]
) -> None:
    """For OCSP answers: ``http://`` is tried (refused connection, not InsecureTransportError);
    its only parameters are trust and timeouts; HTTPS is still verified, redirects not followed."""
    assert set(inspect.signature(signed_documents_client).parameters) == {"trust", "timeouts"}
    with (
        signed_documents_client(trust=None, timeouts=FAST) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get("http://127.0.0.1:9/")
    url, seen = server
    with signed_documents_client(trust=tls.ca_file, timeouts=FAST) as client:
        assert client.get(f"{url}/redirect").status_code == 302
    assert seen.paths == ["/redirect"]
    other = make_tls(tls.ca_file.parent / "other-ca", "Other")
    with (
        signed_documents_client(trust=other.ca_file, timeouts=FAST) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"{url}/")


async def _async_get(url: str, ca: Path) -> httpx.Response:
    async with outbound_async_client(trust=ca, timeouts=FAST) as client:
        return await client.get(url)


def test_the_async_client_has_the_same_guarantees(tls: LocalTls, server: tuple[str, Seen]) -> None:
    """The coroutine client: verified, no redirects, https only, the same headers."""
    import asyncio

    url, seen = server
    assert asyncio.run(_async_get(f"{url}/redirect", tls.ca_file)).status_code == 302
    assert seen.paths == ["/redirect"]
    assert seen.headers[0]["User-Agent"] == USER_AGENT
    with pytest.raises(InsecureTransportError):
        asyncio.run(_async_get("http://127.0.0.1:9/", tls.ca_file))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(_async_get(f"{url}/", make_tls(tls.ca_file.parent / "x", "X").ca_file))


def test_the_user_agent_names_interlock_and_its_version(
    tls: LocalTls, server: tuple[str, Seen]
) -> None:
    """Every request says ``User-Agent: interlock/<version>`` and asks for no compression."""
    url, seen = server
    with outbound_client(trust=tls.ca_file, timeouts=FAST, headers={"X-Extra": "1"}) as client:
        client.get(f"{url}/")
    assert seen.headers[0]["User-Agent"] == f"interlock/{__version__}"
    assert seen.headers[0]["Accept-Encoding"] == "identity"
    assert seen.headers[0]["X-Extra"] == "1"


# -- timeouts --------------------------------------------------------------------------


def test_every_timeout_is_set_as_given() -> None:
    """Connect, read, write and pool each carry their own bound."""
    timeouts = Timeouts(connect=1.5, read=2.5, write=3.5, pool=4.5)
    with outbound_client(trust=None, timeouts=timeouts) as client:
        assert client.timeout == httpx.Timeout(connect=1.5, read=2.5, write=3.5, pool=4.5)


@pytest.mark.parametrize("seconds", [0, -1, math.inf, math.nan])
def test_an_unbounded_or_empty_timeout_is_refused(seconds: float) -> None:
    """No timeout may be zero, negative, infinite or NaN."""
    with pytest.raises(ConfigError):
        Timeouts(connect=1, read=seconds, write=1, pool=1)
    with pytest.raises(ConfigError):
        Timeouts.every(seconds)


def test_a_slow_answer_hits_the_read_timeout(tls: LocalTls, server: tuple[str, Seen]) -> None:
    """A server that takes 1 s to answer is abandoned after the 0.2 s read timeout."""
    url, _ = server
    timeouts = Timeouts(connect=5, read=0.2, write=5, pool=5)
    started = time.monotonic()
    with (
        outbound_client(trust=tls.ca_file, timeouts=timeouts) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.get(f"{url}/slow")
    assert time.monotonic() - started < 0.9


# -- size cap ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/big", "/big-undeclared"])
def test_an_answer_over_the_cap_is_refused(
    tls: LocalTls, server: tuple[str, Seen], path: str
) -> None:
    """4 KiB against a 1 KiB cap: refused by Content-Length, or while reading without one."""
    url, _ = server
    with (
        outbound_client(trust=tls.ca_file, timeouts=FAST) as client,
        client.stream("GET", url + path) as response,
        pytest.raises(ResponseTooLargeError),
    ):
        read_capped(response, 1024)


def test_an_answer_within_the_cap_is_returned(tls: LocalTls, server: tuple[str, Seen]) -> None:
    """Exactly at the cap is fine."""
    url, _ = server
    with (
        outbound_client(trust=tls.ca_file, timeouts=FAST) as client,
        client.stream("GET", f"{url}/big-undeclared") as response,
    ):
        assert read_capped(response, 4096) == b"x" * 4096


# -- client certificates -------------------------------------------------------------------


@dataclass(frozen=True)
class MutualTls(LocalTls):
    """A server that requires a client certificate from the same CA."""

    def server_context(self) -> ssl.SSLContext:
        context = super().server_context()
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(self.ca_file)
        return context


def test_a_client_certificate_is_presented_for_mutual_tls(tmp_path: Path) -> None:
    """With ``client_certificate`` the server sees our identity; without it, no handshake."""
    ca, ca_key = self_signed_ca("mTLS test CA", timedelta(days=1))
    server_cert, server_key = issue_server_certificate(ca, ca_key, ["localhost"], timedelta(days=1))
    client_cert, client_key = issue_client_certificate(
        ca, ca_key, "spiffe://interlock.test/client/outbound", timedelta(days=1)
    )
    (tmp_path / "ca.pem").write_bytes(certificate_pem(ca))
    (tmp_path / "server.pem").write_bytes(certificate_pem(server_cert))
    write_private_file(tmp_path / "server.key", private_key_pem(server_key))
    (tmp_path / "client.pem").write_bytes(certificate_pem(client_cert))
    write_private_file(tmp_path / "client.key", private_key_pem(client_key))
    mutual = MutualTls(tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key")
    seen = Seen([], [], [])
    with https_server(_handler(seen), mutual) as running:
        url = f"https://localhost:{running.server_address[1]}/"
        pair = (tmp_path / "client.pem", tmp_path / "client.key")
        with outbound_client(trust=mutual.ca_file, timeouts=FAST, client_certificate=pair) as c:
            assert c.get(url).status_code == 200
        with (
            outbound_client(trust=mutual.ca_file, timeouts=FAST) as client,
            pytest.raises(httpx.HTTPError),
        ):
            client.get(url)
    subject_alt_names = seen.certificates[0]["subjectAltName"]  # type: ignore[index]
    assert ("URI", "spiffe://interlock.test/client/outbound") in subject_alt_names


def test_a_client_certificate_is_never_loaded_into_a_callers_context(tls: LocalTls) -> None:
    """A context the caller owns (maybe shared) is not changed: pass a CA file instead."""
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    with pytest.raises(ConfigError):
        outbound_client(
            trust=context, timeouts=FAST, client_certificate=(tls.cert_file, tls.key_file)
        )


# -- the environment ---------------------------------------------------------------------------


class ConnectProxy:
    """A plain HTTP ``CONNECT`` proxy on 127.0.0.1 that records where it tunnels to."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        proxy = self

        class Tunnel(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request = self.rfile.readline().decode("latin-1").split()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                if len(request) < 2 or request[0] != "CONNECT":
                    self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                    return
                proxy.targets.append(request[1])
                port = int(request[1].rsplit(":", 1)[1])
                with socket.create_connection(("127.0.0.1", port), timeout=5) as upstream:
                    self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    self.wfile.flush()
                    _pipe(self.connection, upstream)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tunnel)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _pipe(one: socket.socket, other: socket.socket) -> None:
    """Copy bytes both ways until either side closes (a reset is a close too)."""
    while True:
        readable, _, _ = select.select([one, other], [], [], 5)
        if not readable:
            return
        for source in readable:
            try:
                data = source.recv(65536)
                if not data:
                    return
                (other if source is one else one).sendall(data)
            except ConnectionError:
                return


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    """A CONNECT proxy, stopped after the test."""
    running = ConnectProxy()
    yield running
    running.close()


def test_https_proxy_from_the_environment_is_honoured(
    monkeypatch: pytest.MonkeyPatch, tls: LocalTls, server: tuple[str, Seen], proxy: ConnectProxy
) -> None:
    """``HTTPS_PROXY`` routes the request through a CONNECT tunnel, TLS verified end to end."""
    url, seen = server
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with outbound_client(trust=tls.ca_file, timeouts=FAST) as client:
        assert client.get(f"{url}/").text == "ok"
    assert proxy.targets == [url.removeprefix("https://")]
    assert seen.paths == ["/"]


def test_the_proxy_tunnel_does_not_weaken_verification(
    monkeypatch: pytest.MonkeyPatch, server: tuple[str, Seen], proxy: ConnectProxy
) -> None:
    """Through the proxy, a server our trust anchor does not vouch for is still refused."""
    url, seen = server
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with (
        outbound_client(trust=None, timeouts=FAST) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"{url}/")
    assert len(proxy.targets) == 1
    assert seen.paths == []


def test_no_proxy_from_the_environment_is_honoured(
    monkeypatch: pytest.MonkeyPatch, tls: LocalTls, server: tuple[str, Seen], proxy: ConnectProxy
) -> None:
    """A host listed in ``NO_PROXY`` is reached directly."""
    url, _ = server
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost")
    with outbound_client(trust=tls.ca_file, timeouts=FAST) as client:
        assert client.get(f"{url}/").text == "ok"
    assert proxy.targets == []


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_ssl_cert_variables_never_replace_an_explicit_trust_anchor(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tls: LocalTls,
    server: tuple[str, Seen],
    variable: str,
) -> None:
    """With a CA file as anchor, ``SSL_CERT_FILE``/``_DIR`` naming the server's CA change nothing."""
    url, seen = server
    value = tls.ca_file if variable == "SSL_CERT_FILE" else tls.ca_file.parent
    monkeypatch.setenv(variable, str(value))
    other = make_tls(tmp_path / "other", "Another CA").ca_file
    with (
        outbound_client(trust=other, timeouts=FAST) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"{url}/")
    assert seen.paths == []


def test_ssl_cert_file_relocates_the_system_store_as_openssl_documents(
    monkeypatch: pytest.MonkeyPatch, tls: LocalTls, server: tuple[str, Seen]
) -> None:
    """Trust ``None`` is OpenSSL's default store, which ``SSL_CERT_FILE`` relocates (documented).

    This is OpenSSL's behaviour (``set_default_verify_paths``), not httpx's,
    and the same for the gateway's ``ca: system`` upstreams: the environment
    is the deployment's configuration. An explicit anchor is immune (above).
    """
    url, _ = server
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))
    with outbound_client(trust=None, timeouts=FAST) as client:
        assert client.get(f"{url}/").status_code == 200
