"""OCSP for AS2 partner certificates, against OpenSSL's own responder (``openssl ocsp``).

The responder, its index and every certificate are made at test time: the test
CA of the AS2 keys signs the partner's certificate, and either itself or a
delegated responder (``id-kp-OCSPSigning``) answers. Refused: a revoked
certificate, a responder that is down (fail closed), and answers signed by a
key of no relation to the partner's CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from interlock.audit import MemorySink
from interlock.crypto.pkix import certificate_pem, private_key_pem, self_signed_ca
from interlock.crypto.rfc6960 import OcspError, ocsp_request, read_response
from interlock.errors import ConfigError
from interlock.files.as2_mime import entity_of
from interlock.files.as2_send import As2SendError, send
from interlock.files.quarantine import Quarantine
from interlock.outbound import Timeouts, signed_documents_client
from interlock.testing.tls import https_server
from tests.files.as2_support import (
    ORDERS,
    Keys,
    OpenSslPartner,
    ReceiverRig,
    flow,
    manifest,
    openssl,
    openssl_message,
    payload,
    receiver,
    write_crl,
)
from tests.files.quarantine_support import INTEGRATION as FILE_INTEGRATION
from tests.files.quarantine_support import manifest as file_manifest

pytestmark = pytest.mark.processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ca(keys: Keys) -> tuple[x509.Certificate, Any]:
    ca = x509.load_pem_x509_certificate((keys.folder / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((keys.folder / "ca.key").read_bytes(), None)
    return ca, key


def _responder_certificate(
    folder: Path, name: str, issuer: x509.Certificate, issuer_key: Any, *, ocsp_signing: bool
) -> None:
    """An EC certificate ``name``.pem/.key issued by ``issuer``, for OCSP signing or not."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    usage = [ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing else ExtendedKeyUsageOID.CLIENT_AUTH]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} responder")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    (folder / f"{name}.pem").write_bytes(certificate_pem(certificate))
    (folder / f"{name}.key").write_bytes(private_key_pem(key))


def _index_line(certificate: x509.Certificate, *, revoked: bool) -> str:
    """A line of OpenSSL's CA database (``openssl ca``'s index.txt) for ``certificate``."""
    serial = f"{certificate.serial_number:X}"
    serial = serial.rjust(len(serial) + len(serial) % 2, "0")
    expiry = certificate.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    when = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%y%m%d%H%M%SZ")
    subject = "/" + "/".join(certificate.subject.rfc4514_string().split(",")[::-1])
    if revoked:
        return f"R\t{expiry}\t{when}\t{serial}\tunknown\t{subject}\n"
    return f"V\t{expiry}\t\t{serial}\tunknown\t{subject}\n"


@dataclass
class Responder:
    """An ``openssl ocsp`` responder on loopback; ``url`` is where it answers."""

    url: str
    process: subprocess.Popen[bytes] | None


@contextlib.contextmanager
def responder(
    keys: Keys, folder: Path, *, signer: str, revoked: bool = False, ca: str = "ca.pem"
) -> Iterator[Responder]:
    """OpenSSL's OCSP responder for the test CA, signing with ``signer``.pem/.key."""
    folder.mkdir(parents=True, exist_ok=True)
    acme = x509.load_pem_x509_certificate((keys.folder / "acme.pem").read_bytes())
    index = folder / "index.txt"
    index.write_text(_index_line(acme, revoked=revoked), encoding="ascii")
    port = _free_port()
    command = [
        shutil.which("openssl") or "/usr/bin/openssl", "ocsp", "-index", str(index),
        "-CA", keys.file(ca), "-rsigner", str(folder / f"{signer}.pem"),
        "-rkey", str(folder / f"{signer}.key"), "-port", str(port), "-nmin", "10",
        "-ignore_err",
    ]  # fmt: skip
    log = folder / f"responder-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=output)  # noqa: S603
    try:
        _wait_for(log, process)
        yield Responder(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for(log: Path, process: subprocess.Popen[bytes]) -> None:
    """Until the responder says it listens (a probe connection would stall OpenSSL 3.0's)."""
    for _ in range(400):
        if process.poll() is not None:
            raise AssertionError(f"openssl ocsp exited at start: {log.read_text()[:500]}")
        if b"waiting for OCSP client connections" in log.read_bytes():
            return
        time.sleep(0.05)
    raise AssertionError("openssl ocsp did not start listening")


@pytest.fixture
def signers(keys: Keys, tmp_path: Path) -> Path:
    """The responders' keys: the CA itself, a delegated responder, and three it must refuse."""
    folder = tmp_path / "ocsp"
    folder.mkdir()
    ca, ca_key = _ca(keys)
    (folder / "ca.pem").write_bytes(certificate_pem(ca))
    (folder / "ca.key").write_bytes((keys.folder / "ca.key").read_bytes())
    _responder_certificate(folder, "delegated", ca, ca_key, ocsp_signing=True)
    _responder_certificate(folder, "no-eku", ca, ca_key, ocsp_signing=False)
    stranger, stranger_key = self_signed_ca("Stranger OCSP CA", timedelta(days=1))
    _responder_certificate(folder, "stranger", stranger, stranger_key, ocsp_signing=True)
    # A CA of the same name as the partner's, another key: a forged "the issuer says good".
    forged, forged_key = self_signed_ca("AS2 test CA", timedelta(days=1))
    (folder / "forged.pem").write_bytes(certificate_pem(forged))
    (folder / "forged.key").write_bytes(private_key_pem(forged_key))
    return folder


def _receive(rig: ReceiverRig, keys: Keys) -> tuple[int, str, str | None]:
    """One message from ACME: the HTTP status, the MDN's disposition and the audit reason."""
    headers, body = openssl_message(keys, payload())
    answer = asyncio.run(rig.receiver.receive(headers, body))
    entity = entity_of({k.lower(): v for k, v in answer.headers.items()}, answer.body)
    report = openssl(
        "cms", "-verify", "-CAfile", keys.file("ca.pem"), "-certfile", keys.file("ours.pem"),
        "-nointern", stdin=entity,
    ).decode()  # fmt: skip
    found = re.search(r"^Disposition:\s*(.+?)\r?$", report, re.MULTILINE)
    assert found is not None, report
    (entry,) = [e for e in rig.audit.entries if e.action == "files.as2.receive"]
    return answer.status, found.group(1) + "\n" + report, entry.reason


@pytest.mark.parametrize("signer", ["ca", "delegated"])
def test_a_good_answer_admits_the_message(
    keys: Keys, tmp_path: Path, signers: Path, signer: str
) -> None:
    """The CA or its delegated responder says good: accepted into processing."""
    with responder(keys, signers, signer=signer) as ocsp:
        rig = receiver(keys, tmp_path / "area", ocsp=ocsp.url, revocation="ocsp")
        status, disposition, reason = _receive(rig, keys)
    assert status == 200
    assert reason is None
    assert disposition.startswith("automatic-action/MDN-sent-automatically; processed\n")
    assert [path.name for path in rig.quarantine.processing()] == ["orders.csv"]


def test_a_revoked_certificate_is_refused_and_the_mdn_says_so(
    keys: Keys, tmp_path: Path, signers: Path
) -> None:
    """The responder says revoked: authentication-failed, audited, told in the MDN."""
    with responder(keys, signers, signer="ca", revoked=True) as ocsp:
        rig = receiver(keys, tmp_path / "area", ocsp=ocsp.url, revocation="ocsp")
        status, disposition, reason = _receive(rig, keys)
    assert status == 200
    assert disposition.startswith("automatic-action/MDN-sent-automatically; processed/error: ")
    assert "authentication-failed" in disposition.splitlines()[0]
    assert "The signer's certificate is revoked." in disposition
    assert reason == "authentication-failed: the partner's certificate is revoked (OCSP)"
    assert rig.quarantine.processing() == []


def test_a_responder_that_is_down_fails_closed(keys: Keys, tmp_path: Path) -> None:
    """Nothing answers at the declared responder: refused, the reason audited and in the MDN."""
    url = f"http://127.0.0.1:{_free_port()}"
    rig = receiver(keys, tmp_path / "area", ocsp=url, revocation="ocsp")
    _, disposition, reason = _receive(rig, keys)
    assert "processed/error: authentication-failed" in disposition.splitlines()[0]
    assert "could not be checked for revocation" in disposition
    assert reason == (
        "authentication-failed: revocation not established: the OCSP responder could not be reached"
    )
    assert rig.quarantine.processing() == []


@pytest.mark.parametrize(
    ("signer", "why"),
    [
        ("stranger", "the OCSP responder's certificate is not issued by the partner's CA"),
        ("forged", "the OCSP answer's signature does not verify"),
        ("no-eku", "the OCSP responder's certificate is not for OCSP signing"),
    ],
)
def test_an_answer_signed_by_anyone_else_is_refused(
    keys: Keys, tmp_path: Path, signers: Path, signer: str, why: str
) -> None:
    """Signed by an unrelated responder, a forged CA of the same name, or a non-OCSP cert."""
    with responder(keys, signers, signer=signer) as ocsp:
        rig = receiver(keys, tmp_path / "area", ocsp=ocsp.url, revocation="ocsp")
        _, disposition, reason = _receive(rig, keys)
    assert "processed/error: authentication-failed" in disposition.splitlines()[0]
    assert reason == f"authentication-failed: revocation not established: {why}"
    assert rig.quarantine.processing() == []


def test_a_good_answer_is_kept_until_its_next_update(
    keys: Keys, tmp_path: Path, signers: Path
) -> None:
    """The second message is admitted on the cached answer after the responder has gone."""
    with responder(keys, signers, signer="ca") as ocsp:
        rig = receiver(keys, tmp_path / "area", ocsp=ocsp.url, revocation="ocsp")
        assert _receive(rig, keys)[0] == 200
    headers, body = openssl_message(keys, payload("more.csv"))
    headers["message-id"] = "<20260101-2@acme.example>"
    answer = asyncio.run(rig.receiver.receive(headers, body))
    assert answer.status == 200
    assert sorted(p.name for p in rig.quarantine.processing()) == ["more.csv", "orders.csv"]


@pytest.mark.parametrize("revoked", [False, True])
def test_either_falls_back_to_the_crl_when_the_responder_is_down(
    keys: Keys, tmp_path: Path, revoked: bool
) -> None:
    """revocation: either, responder down: the CRL decides (admitted, or refused as revoked)."""
    crl = write_crl(keys, f"either-{revoked}.pem", revoke=("acme.pem",) if revoked else ())
    url = f"http://127.0.0.1:{_free_port()}"
    rig = receiver(keys, tmp_path / "area", ocsp=url, crl=crl, revocation="either")
    _, disposition, reason = _receive(rig, keys)
    if revoked:
        assert reason == "authentication-failed: the partner's certificate is revoked"
        assert rig.quarantine.processing() == []
    else:
        assert reason is None, disposition
        assert [p.name for p in rig.quarantine.processing()] == ["orders.csv"]


def test_the_responder_the_certificate_names_is_asked(
    keys: Keys, tmp_path: Path, signers: Path
) -> None:
    """revocation: auto and no ocsp: in the profile: the certificate's AIA responder decides."""
    with responder(keys, signers, signer="ca", revoked=True) as ocsp:
        _reissue_with_aia(keys, tmp_path, ocsp.url)
        rig = receiver(keys, tmp_path / "area", certificate=f"file:{tmp_path / 'aia.pem'}")
        headers, body = openssl_message(keys, payload(), signer="aia")
        answer = asyncio.run(rig.receiver.receive(headers, body))
    assert answer.status == 200
    (entry,) = [e for e in rig.audit.entries if e.action == "files.as2.receive"]
    assert entry.reason == "authentication-failed: the partner's certificate is revoked (OCSP)"


def _reissue_with_aia(keys: Keys, folder: Path, url: str) -> None:
    """ACME's certificate again — same key and serial — naming ``url`` as its OCSP responder."""
    ca, ca_key = _ca(keys)
    acme = x509.load_pem_x509_certificate((keys.folder / "acme.pem").read_bytes())
    access = x509.AuthorityInformationAccess(
        [x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.OCSP,
                                x509.UniformResourceIdentifier(url))]
    )  # fmt: skip
    builder = (
        x509.CertificateBuilder()
        .subject_name(acme.subject)
        .issuer_name(ca.subject)
        .public_key(acme.public_key())
        .serial_number(acme.serial_number)
        .not_valid_before(acme.not_valid_before_utc)
        .not_valid_after(acme.not_valid_after_utc)
        .add_extension(access, critical=False)
    )
    for extension in acme.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    (folder / "aia.pem").write_bytes(certificate_pem(builder.sign(ca_key, hashes.SHA256())))
    shutil.copy(keys.folder / "acme.key", keys.folder / "aia.key")
    shutil.copy(folder / "aia.pem", keys.folder / "aia.pem")


@pytest.mark.parametrize(
    ("partner", "message"),
    [
        ({"revocation": "ocsp"}, "needs an OCSP responder"),
        ({"revocation": "ocsp", "ocsp": "http://127.0.0.1:1", "ca": "system"}, "issuer"),
    ],
)
def test_an_ocsp_profile_that_cannot_work_is_refused_at_load(
    keys: Keys, tmp_path: Path, partner: dict[str, Any], message: str
) -> None:
    """revocation: ocsp without a responder, or without the issuer in ca: a ConfigError."""
    with pytest.raises(ConfigError, match=message):
        receiver(keys, tmp_path, **partner)


@pytest.mark.parametrize("revoked", [False, True])
def test_the_sender_asks_before_sending_and_checks_the_mdn_signer(
    keys: Keys, signers: Path, revoked: bool
) -> None:
    """Outbound: good, the send is confirmed; revoked, nothing reaches the partner."""
    OpenSslPartner.keys, OpenSslPartner.mic_override = keys, None
    OpenSslPartner.received.clear()
    audit = MemorySink()
    with (
        responder(keys, signers, signer="delegated", revoked=revoked) as ocsp,
        https_server(OpenSslPartner, keys.tls) as server,
    ):
        url = f"https://localhost:{server.server_address[1]}/as2"
        loaded = manifest(
            keys, partner={"url": url, "ocsp": ocsp.url, "revocation": "ocsp"}, direction="outbound"
        )
        sending = send(flow(keys, loaded), "orders.csv", ORDERS, audit=audit)
        if revoked:
            with pytest.raises(As2SendError, match=r"revoked \(OCSP\)"):
                asyncio.run(sending)
        else:
            assert asyncio.run(sending).mdn is not None
    assert len(OpenSslPartner.received) == (0 if revoked else 1)
    (entry,) = audit.entries
    assert entry.outcome.result == ("failure" if revoked else "success")


def test_a_replayed_or_stale_answer_is_refused(keys: Keys, signers: Path) -> None:
    """OpenSSL's answer to one request: not taken for another (nonce), late, or early."""
    ca, _ = _ca(keys)
    acme = x509.load_pem_x509_certificate((keys.folder / "acme.pem").read_bytes())
    first, second = ocsp_request(acme, ca), ocsp_request(acme, ca)
    with (
        responder(keys, signers, signer="ca") as ocsp,
        signed_documents_client(trust=None, timeouts=Timeouts.every(10.0)) as client,
    ):
        answer = client.post(
            ocsp.url, content=first.der, headers={"Content-Type": "application/ocsp-request"}
        ).content
    now = datetime.now(UTC)
    assert read_response(answer, first, now=now).status == "good"
    with pytest.raises(OcspError, match="nonce"):
        read_response(answer, second, now=now)
    with pytest.raises(OcspError, match="expired"):
        read_response(answer, first, now=now + timedelta(minutes=30))
    with pytest.raises(OcspError, match="future"):
        read_response(answer, first, now=now - timedelta(minutes=30))
    with pytest.raises(OcspError, match="parsed"):
        read_response(answer[:-5], first, now=now)


@pytest.mark.parametrize("revoked", [False, True])
def test_a_signed_files_signer_is_checked_by_ocsp_too(
    keys: Keys, tmp_path: Path, signers: Path, revoked: bool
) -> None:
    """signature: detached-cms with a signer: that names a responder: revoked keeps the file."""
    data = b"order_id,email,total\r\n1,ada@example.com,12.50\r\n"
    signature = openssl(
        "cms", "-sign", "-binary", "-signer", keys.file("acme.pem"),
        "-inkey", keys.file("acme.key"), "-outform", "DER", stdin=data,
    )  # fmt: skip
    with responder(keys, signers, signer="delegated", revoked=revoked) as ocsp:
        signer = {
            "certificate": f"file:{keys.file('acme.pem')}",
            "ca": f"file:{keys.file('ca.pem')}",
            "ocsp": ocsp.url,
            "revocation": "ocsp",
        }
        loaded = file_manifest(
            tmp_path, partner={"signer": signer}, signature="detached-cms", checksum="none"
        )
        quarantine = Quarantine(tmp_path / "area", loaded, FILE_INTEGRATION, audit=MemorySink())
        verdict = asyncio.run(
            quarantine.accept("orders.csv", data, sidecars={"orders.csv.p7s": signature})
        )
    assert verdict.accepted is not revoked, verdict.reasons
    if revoked:
        assert verdict.reasons == (
            "the detached signature is refused: the partner's certificate is revoked (OCSP)",
        )
