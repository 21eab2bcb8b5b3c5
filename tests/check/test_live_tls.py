"""``--live`` upstream TLS probe: real handshakes against servers with certificates made here."""

from __future__ import annotations

import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from interlock.check.live_tls import tls_findings, upstream_systems
from interlock.check.results import Finding
from interlock.testing.tls import LocalTls, https_server
from tests.check.live_helpers import Tls12Only, certificates, manifest_with, trust_of

TIMEOUT = 5.0


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        """Answer anything with 204."""
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


def _probe(tls: LocalTls, port: int, policy: str | None = None) -> dict[str, Finding]:
    system: dict[str, object] = {"url": f"https://localhost:{port}", "ca": "pki:test"}
    if policy is not None:
        system["tls"] = {"min_version": policy}
    manifest = manifest_with({"erp": system})
    found = tls_findings(manifest, trust_of({"pki:test": tls.ca_file}), datetime.now(UTC), TIMEOUT)
    assert all(f.live and f.integration == "to-erp" for f in found)
    return {f.item: f for f in found}


def test_a_verified_tls13_upstream_passes_both_items(tmp_path: Path) -> None:
    """Chain, host name, version and expiry all check out: two passing findings."""
    tls = certificates(tmp_path)
    with https_server(_Ok, tls) as server:
        found = _probe(tls, server.server_address[1])
    assert found["tls_required"].status == "pass"
    assert "TLSv1.3" in found["tls_required"].reason
    assert found["certificates_validated"].status == "pass"
    assert "expires in 89 days" in found["certificates_validated"].reason


def test_tls12_passes_with_a_note_but_fails_a_13_policy(tmp_path: Path) -> None:
    """1.2 is allowed (1.3 preferred), unless the system's policy asks for 1.3."""
    made = certificates(tmp_path)
    tls = Tls12Only(made.ca_file, made.cert_file, made.key_file)
    with https_server(_Ok, tls) as server:
        port = server.server_address[1]
        allowed = _probe(tls, port)
        required = _probe(tls, port, "1.3")
    assert allowed["tls_required"].status == "pass"
    assert "TLSv1.2 (1.3 preferred)" in allowed["tls_required"].reason
    assert required["tls_required"].status == "fail"
    assert "requires TLS 1.3" in required["tls_required"].reason


def test_an_expired_certificate_fails_verification(tmp_path: Path) -> None:
    """A certificate that expired is refused by the handshake: that is the finding."""
    tls = certificates(
        tmp_path, lifetime=timedelta(days=1), issued=datetime.now(UTC) - timedelta(days=30)
    )
    with https_server(_Ok, tls) as server:
        found = _probe(tls, server.server_address[1])
    assert found["certificates_validated"].status == "fail"
    assert "expired" in found["certificates_validated"].reason
    assert found["certificates_validated"].fix is not None


def test_a_certificate_expiring_within_14_days_fails(tmp_path: Path) -> None:
    """Verified, but five days left: renewal is not happening."""
    tls = certificates(tmp_path, lifetime=timedelta(days=5))
    with https_server(_Ok, tls) as server:
        found = _probe(tls, server.server_address[1])
    assert found["tls_required"].status == "pass"
    assert found["certificates_validated"].status == "fail"
    assert "expires in 4 days" in found["certificates_validated"].reason


def test_a_wrong_host_name_fails_verification(tmp_path: Path) -> None:
    """A certificate for another name is refused, not accepted for its chain alone."""
    tls = certificates(tmp_path, hosts=("erp.example.test",))
    with https_server(_Ok, tls) as server:
        found = _probe(tls, server.server_address[1])
    assert found["certificates_validated"].status == "fail"
    assert "certificate refused" in found["certificates_validated"].reason
    assert "localhost" in found["certificates_validated"].reason
    # The server got as far as showing a certificate: it spoke TLS 1.2 or later.
    assert found["tls_required"].status == "pass"


def test_an_untrusted_ca_fails_verification(tmp_path: Path) -> None:
    """Trusting another CA than the one that issued the certificate fails."""
    tls = certificates(tmp_path / "real")
    other = certificates(tmp_path / "other")
    manifest = manifest_with({"erp": {"url": "https://localhost:1", "ca": "pki:test"}})
    with https_server(_Ok, tls) as server:
        manifest = manifest_with(
            {"erp": {"url": f"https://localhost:{server.server_address[1]}", "ca": "pki:test"}}
        )
        found = tls_findings(
            manifest, trust_of({"pki:test": other.ca_file}), datetime.now(UTC), TIMEOUT
        )
    verdict = {f.item: f for f in found}["certificates_validated"]
    assert verdict.status == "fail"
    assert "unable to get local issuer certificate" in verdict.reason


def test_an_unreachable_upstream_is_a_failed_finding_not_an_error(tmp_path: Path) -> None:
    """Connection refused: both items fail with the reason."""
    tls = certificates(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        found = _probe(tls, taken.getsockname()[1])
    for item in ("tls_required", "certificates_validated"):
        assert found[item].status == "fail"
        assert "cannot connect" in found[item].reason


def test_an_unknown_trust_anchor_is_a_failed_finding(tmp_path: Path) -> None:
    """A ``pki:`` anchor this deployment lacks is reported, not raised."""
    manifest = manifest_with({"erp": {"url": "https://localhost:1", "ca": "pki:elsewhere"}})
    found = tls_findings(manifest, trust_of({}), datetime.now(UTC), TIMEOUT)
    assert {f.status for f in found} == {"fail"}
    assert "pki:elsewhere" in found[0].reason


@contextmanager
def _tls11_server(tls: LocalTls) -> Iterator[int]:
    """A server that speaks TLS 1.1 only; skips when this OpenSSL cannot."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1_1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (ssl.SSLError, ValueError) as exc:
        pytest.skip(f"this OpenSSL cannot serve TLS 1.1: {exc}")
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with context.wrap_socket(connection, server_side=True) as wrapped:
                seen.append(str(wrapped.version()))
        except (ssl.SSLError, OSError) as exc:
            seen.append(type(exc).__name__)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(timeout=5)


def test_a_tls11_only_upstream_fails_tls_required(tmp_path: Path) -> None:
    """No version of 1.2 or later in common: the handshake fails, and that is the finding."""
    tls = certificates(tmp_path)
    with _tls11_server(tls) as port:
        found = _probe(tls, port)
    assert found["tls_required"].status == "fail"
    assert "no TLS 1.2 or later offered" in found["tls_required"].reason
    assert found["certificates_validated"].status == "fail"


def test_only_systems_that_routes_forward_to_are_probed() -> None:
    """A system no route uses is not connected to; each probed one lists its integrations."""
    manifest = manifest_with({"erp": {"url": "https://localhost:1"}})
    extra = manifest.model_copy(
        update={"systems": {**manifest.systems, "idle": manifest.systems["erp"]}}
    )
    assert upstream_systems(extra) == {"erp": ["to-erp"]}


def test_a_plain_http_upstream_fails_tls_required(tmp_path: Path) -> None:
    """A server answering without TLS is named as such, not as an old TLS version."""
    tls = certificates(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        found = _probe(tls, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert found["tls_required"].status == "fail"
    assert "does not speak TLS" in found["tls_required"].reason
