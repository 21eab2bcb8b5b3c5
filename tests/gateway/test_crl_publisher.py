"""The CRL publisher: lists stay current without revocations, and every issuing CA has one.

Handshakes are real (OpenSSL, on a loopback socket); OpenSSL checks validity
by the system's clock, so the PKI's hand-moved clock starts near the real time.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import load_crls_pem
from interlock.gateway.crl import CrlPublisher
from interlock.gateway.tls import server_context
from interlock.pki.authority import CRL_VALIDITY, Issued, Pki
from interlock.store import Deployment
from interlock.testing.clock import ManualClock

TRUST_DOMAIN = "example.test"
Files = tuple[Path, Path]


def _pki(deployment: Deployment, clock: ManualClock) -> Pki:
    pki = Pki(deployment.engine, deployment.keyring, deployment.deployment_id, TRUST_DOMAIN, clock)
    pki.ensure()
    return pki


def _files(folder: Path, issued: Issued) -> Files:
    cert, key = folder / f"{issued.serial}.pem", folder / f"{issued.serial}.key"
    cert.write_bytes(issued.certificate_pem)
    write_private_file(key, issued.private_key_pem)
    return cert, key


def _ca(folder: Path, pki: Pki) -> Path:
    path = folder / "ca.pem"
    path.write_bytes(pki.root_certificate_pem())
    return path


def _listener(pki: Pki, folder: Path, publisher: CrlPublisher) -> ssl.SSLContext:
    """What the gateway's start does: sign, build the listener context with the list, attach."""
    publisher.refresh()
    server = _files(folder, pki.issue_server(["localhost"]))
    context = server_context(
        *server, "1.2", _ca(folder, pki), client_auth="required", crl=publisher.pem_path
    )
    publisher.attach(context)
    return context


def _next_second(clock: ManualClock) -> None:
    """Move ``clock`` to the real time, a second on: a later ``thisUpdate``, none in the future."""
    time.sleep(1)
    clock.now = datetime.now(UTC)


def _handshake(context: ssl.SSLContext, ca: Path, client: Files) -> str:
    """``accepted``, or why the listener refused ``client``'s certificate."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result: list[str] = []

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"k")
                result.append("accepted")
        except ssl.SSLCertVerificationError as exc:
            result.append(f"refused: {exc.verify_message}")
        except (ssl.SSLError, OSError) as exc:
            result.append(f"refused: {exc}")

    thread = threading.Thread(target=serve)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(ca))
    client_context.load_cert_chain(*client)
    try:
        with client_context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost"
        ) as tls:
            tls.recv(1)
    except (ssl.SSLError, OSError):
        pass  # the server's side says why
    thread.join(10)
    listener.close()
    return result[0] if result else "no answer"


def test_the_list_is_re_signed_at_half_its_validity_without_any_revocation(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A gateway running past the first list's nextUpdate still accepts valid certificates."""
    real = datetime.now(UTC)
    clock = ManualClock(real - CRL_VALIDITY - timedelta(hours=1))  # started 25 hours ago
    pki = _pki(deployment, clock)
    client = _files(tmp_path, pki.issue_client("alice"))
    publisher = CrlPublisher(pki, tmp_path)
    context = _listener(pki, tmp_path, publisher)
    first = x509.load_der_x509_crl(publisher.der)
    clock.now += timedelta(hours=1)
    assert not publisher.refresh()  # nothing revoked, the list is young: unchanged
    clock.now = first.last_update_utc + CRL_VALIDITY / 2
    assert publisher.refresh()  # half its validity gone: a new one
    clock.now = real  # the first list expired an hour ago
    assert first.next_update_utc is not None
    assert first.next_update_utc < real
    assert _handshake(context, tmp_path / "ca.pem", client) == "accepted"
    served = x509.load_der_x509_crl(publisher.der)  # what GET /pki/crl answers
    assert served.next_update_utc is not None
    assert served.next_update_utc > real


def test_certificates_of_a_replaced_intermediate_stay_valid_and_revocable(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Across renew-intermediate: old and new leaves handshake; a revoked old one fails."""
    clock = ManualClock(datetime.now(UTC))
    pki = _pki(deployment, clock)
    old = pki.issue_client("alice")
    old_files = _files(tmp_path, old)
    publisher = CrlPublisher(pki, tmp_path)
    running = _listener(pki, tmp_path, publisher)  # a gateway running across the renewal
    pki.renew_issuing()
    new_files = _files(tmp_path, pki.issue_client("carol"))
    _next_second(clock)
    assert publisher.refresh()  # a new issuer: its list is signed at once
    ca = tmp_path / "ca.pem"
    assert _handshake(running, ca, old_files) == "accepted"
    assert _handshake(running, ca, new_files) == "accepted"
    restarted = _listener(pki, tmp_path, CrlPublisher(pki, tmp_path))  # one started after it
    assert _handshake(restarted, ca, old_files) == "accepted"
    assert _handshake(restarted, ca, new_files) == "accepted"

    pki.revoke(old.serial, "keyCompromise")
    _next_second(clock)
    assert publisher.refresh()
    assert _handshake(running, ca, old_files) == "refused: certificate revoked"
    assert _handshake(running, ca, new_files) == "accepted"
    old_issuer = x509.load_pem_x509_certificates(old.certificate_pem)[1]
    published = load_crls_pem(publisher.pem)  # what GET /pki/crl/all.pem answers
    assert len(published) == 2
    (its_list,) = [crl for crl in published if crl.is_signature_valid(old_issuer.public_key())]  # type: ignore[arg-type]
    assert its_list.get_revoked_certificate_by_serial_number(int(old.serial, 16)) is not None
    current = x509.load_der_x509_crl(publisher.der)  # GET /pki/crl: the current issuer's
    assert current.get_revoked_certificate_by_serial_number(int(old.serial, 16)) is None
