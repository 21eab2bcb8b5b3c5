"""Interlock's AS2 certificate issued by its own PKI: `pki issue as2`, `files as2-cert`, renewal.

OpenSSL is the independent peer: it checks the exported certificate's
purpose and chain, encrypts to it, verifies the MDNs and messages signed with it.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from interlock.audit import MemorySink
from interlock.cli.main import main
from interlock.cli.vault_session import open_vault_session
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.errors import ConfigError
from interlock.files.as2_mime import entity_of
from interlock.files.as2_profile import As2Flow, as2_flow
from interlock.files.as2_receive import As2Answer, As2Receiver
from interlock.files.as2_send import send
from interlock.files.quarantine import Quarantine
from interlock.replay.seen import MemorySeen
from interlock.testing.tls import https_server
from tests.conftest import isolate_cli
from tests.files.as2_support import (
    _MANIFEST,
    INTEGRATION,
    ORDERS,
    Keys,
    OpenSslPartner,
    openssl,
    payload,
)

pytestmark = pytest.mark.processes

NAME = "example-as2"


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An initialised deployment with AS2 certificate NAME issued; the work folder."""
    isolate_cli(monkeypatch, tmp_path)
    assert main(["init"]) == 0
    assert main(["pki", "issue", "as2", NAME]) == 0
    return tmp_path


def _export(folder: Path, tag: str) -> tuple[Path, Path]:
    cert, chain = folder / f"{tag}.pem", folder / f"{tag}-chain.pem"
    assert main(["files", "as2-cert", NAME, "--out", str(cert), "--chain-out", str(chain)]) == 0
    return cert, chain


def _manifest(keys: Keys, folder: Path, **ours: Any) -> Manifest:
    document: dict[str, Any] = yaml.safe_load(_MANIFEST)
    profile = document["partners"]["acme"]["as2"]
    profile.pop("our_key")
    profile["certificate"] = f"file:{keys.file('acme.pem')}"
    profile["ca"] = f"file:{keys.file('anchors.pem')}"
    profile["our_certificate"] = f"pki:{NAME}"
    profile.update(ours)
    path = folder / "interlock.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_manifest(path)


def _flow(loaded: Manifest, folder: Path) -> As2Flow:
    with open_vault_session() as session:
        return as2_flow(
            loaded,
            INTEGRATION,
            resolve=lambda reference: session.vault.resolve(reference).reveal(),
            anchors={},
            base=folder,
        )


def _message(
    keys: Keys, recipient: Path, message_id: str, name: str = "orders.csv"
) -> tuple[dict[str, str], bytes]:
    """An AS2 message OpenSSL signs (ACME's key) and encrypts (OAEP) to ``recipient``."""
    signed = openssl(
        "cms", "-sign", "-binary", "-md", "sha256", "-signer", keys.file("acme.pem"),
        "-inkey", keys.file("acme.key"), stdin=payload(name),
    )  # fmt: skip
    body = openssl(
        "cms", "-encrypt", "-binary", "-aes-256-gcm", "-outform", "DER", "-recip", str(recipient),
        "-keyopt", "rsa_padding_mode:oaep", stdin=signed,
    )  # fmt: skip
    headers = {
        "as2-version": "1.2",
        "as2-from": "ACME",
        "as2-to": "EXAMPLE",
        "message-id": message_id,
        "content-type": 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
        "disposition-notification-to": "edi@acme.example",
        "disposition-notification-options": (
            "signed-receipt-protocol=optional, pkcs7-signature; "
            "signed-receipt-micalg=optional, sha-256"
        ),
    }
    return headers, body


def _receive(
    loaded: Manifest, flow: As2Flow, area: Path, headers: dict[str, str], body: bytes
) -> As2Answer:
    quarantine = Quarantine(area, loaded, INTEGRATION, audit=MemorySink())
    receiver = As2Receiver(flow, quarantine=quarantine, seen=MemorySeen(), audit=MemorySink())
    return asyncio.run(receiver.receive(headers, body))


def _mdn_report(answer: As2Answer, cert: Path, chain: Path) -> bytes:
    """OpenSSL verifies the MDN: signed by exactly ``cert``, chained to the exported CA chain."""
    entity = entity_of({k.lower(): v for k, v in answer.headers.items()}, answer.body)
    return openssl(
        "cms", "-verify", "-CAfile", str(chain), "-certfile", str(cert), "-nointern",
        "-purpose", "smimesign", stdin=entity,
    )  # fmt: skip


def test_the_issued_certificate_is_an_rsa_3072_smime_certificate(deployment: Path) -> None:
    """RSA 3072, digitalSignature + keyEncipherment, emailProtection; OpenSSL accepts its chain."""
    cert, chain = _export(deployment, "ours")
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 3072
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert usage.key_encipherment
    assert not usage.key_cert_sign
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert b"PRIVATE KEY" not in cert.read_bytes() + chain.read_bytes()
    for purpose in ("smimesign", "smimeencrypt"):
        out = openssl("verify", "-CAfile", str(chain), "-purpose", purpose, str(cert))
        assert out.strip().endswith(b"OK")
    # exported files are never overwritten
    assert main(["files", "as2-cert", NAME, "--out", str(cert)]) != 0
    # one certificate per name: a second issue is refused (renew instead)
    assert main(["pki", "issue", "as2", NAME]) != 0


def test_openssl_exchanges_messages_with_the_pki_certificate(keys: Keys, deployment: Path) -> None:
    """OpenSSL encrypts to the exported certificate: received; the MDN it signs verifies."""
    cert, chain = _export(deployment, "ours")
    loaded = _manifest(keys, deployment)
    flow = _flow(loaded, deployment)
    headers, body = _message(keys, cert, "<pki-1@acme.example>")
    answer = _receive(loaded, flow, deployment / "area", headers, body)
    assert answer.status == 200, answer
    assert (deployment / "area" / "processing" / INTEGRATION / "orders.csv").read_bytes() == ORDERS
    report = _mdn_report(answer, cert, chain)
    assert re.search(rb"Disposition:.*processed\r?$", report, re.MULTILINE)


def test_a_renewed_certificate_signs_and_the_old_one_still_decrypts(
    keys: Keys, deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pki renew`: the new certificate signs at once; messages to the old one still open."""
    old_cert, chain = _export(deployment, "old")
    serial = f"{x509.load_pem_x509_certificate(old_cert.read_bytes()).serial_number:x}"
    out = deployment / "renewed"
    capsys.readouterr()
    assert main(["pki", "renew", serial, "--out", str(out)]) == 0
    assert "sealed in the vault" in capsys.readouterr().out
    assert list(out.iterdir()) == []  # the key never goes to a file
    new_cert, _ = _export(deployment, "new")
    assert new_cert.read_bytes() != old_cert.read_bytes()
    loaded = _manifest(keys, deployment)
    flow = _flow(loaded, deployment)
    for number, recipient in enumerate((old_cert, new_cert)):
        headers, body = _message(keys, recipient, f"<renewed-{number}@acme.example>")
        area = deployment / f"area-{number}"
        answer = _receive(loaded, flow, area, headers, body)
        assert answer.status == 200, answer
        assert (area / "processing" / INTEGRATION / "orders.csv").read_bytes() == ORDERS
        _mdn_report(answer, new_cert, chain)  # signed with the new certificate
        with pytest.raises(AssertionError, match="cms"):
            _mdn_report(answer, old_cert, chain)


def test_a_profile_names_either_a_pki_certificate_or_a_file_and_a_key(
    keys: Keys, deployment: Path
) -> None:
    """``pki:NAME`` with ``our_key``, or a file without one: refused when the manifest loads."""
    with pytest.raises(ConfigError, match="not with our_certificate: pki"):
        _manifest(keys, deployment, our_key="secret://acme/as2-key")
    with pytest.raises(ConfigError, match="our_key: required"):
        _manifest(keys, deployment, our_certificate="file:ours.pem")
    loaded = _manifest(keys, deployment, our_certificate="pki:nobody-as2")
    with pytest.raises(ConfigError, match="interlock pki issue as2 nobody-as2"):
        _flow(loaded, deployment)


def test_openssl_opens_what_we_send_with_the_pki_certificate(keys: Keys, deployment: Path) -> None:
    """Sending: OpenSSL verifies our signature by the exported certificate and CA chain."""
    cert, chain = _export(deployment, "ours")
    partner = deployment / "partner"  # what ACME holds: its own key, our certificate and CA
    partner.mkdir()
    for name in ("acme.pem", "acme.key"):
        shutil.copy(keys.file(name), partner / name)
    shutil.copy(cert, partner / "ours.pem")
    shutil.copy(chain, partner / "ca.pem")
    OpenSslPartner.keys = Keys(partner, keys.tls, b"")
    OpenSslPartner.mic_override = None
    OpenSslPartner.received.clear()
    with https_server(OpenSslPartner, keys.tls) as server:
        url = f"https://localhost:{server.server_address[1]}/as2"
        _manifest(keys, deployment, url=url)  # then made outbound
        document = yaml.safe_load((deployment / "interlock.yaml").read_text(encoding="utf-8"))
        document["integrations"][INTEGRATION]["files"]["direction"] = "outbound"
        (deployment / "interlock.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
        loaded = load_manifest(deployment / "interlock.yaml")
        audit = MemorySink()
        asyncio.run(send(_flow(loaded, deployment), "orders.csv", ORDERS, audit=audit))
    (content,) = OpenSslPartner.received
    assert content.endswith(b"\r\n\r\n" + ORDERS)
    (entry,) = audit.entries
    assert (entry.action, entry.outcome.result) == ("files.as2.send", "success")


def test_a_running_receiver_takes_up_the_renewed_certificate(keys: Keys, deployment: Path) -> None:
    """A receiver made before `pki renew`: a message to the new certificate opens; MDNs switch."""
    old_cert, chain = _export(deployment, "old")
    loaded = _manifest(keys, deployment)
    quarantine = Quarantine(deployment / "area", loaded, INTEGRATION, audit=MemorySink())
    with open_vault_session() as session:  # the gateway's vault, open while it runs
        flow = as2_flow(
            loaded,
            INTEGRATION,
            resolve=lambda reference: session.vault.resolve(reference).reveal(),
            anchors={},
            base=deployment,
        )
        receiver = As2Receiver(flow, quarantine=quarantine, seen=MemorySeen(), audit=MemorySink())
        serial = f"{x509.load_pem_x509_certificate(old_cert.read_bytes()).serial_number:x}"
        assert main(["pki", "renew", serial, "--out", str(deployment / "renewed")]) == 0
        new_cert, _ = _export(deployment, "new")
        for number, (recipient, signer) in enumerate(
            [(old_cert, old_cert), (new_cert, new_cert), (old_cert, new_cert)]
        ):
            message_id = f"<running-{number}@acme.example>"
            headers, body = _message(keys, recipient, message_id, f"orders-{number}.csv")
            answer = asyncio.run(receiver.receive(headers, body))
            assert answer.status == 200, answer
            report = _mdn_report(answer, signer, chain)
            assert re.search(rb"Disposition:.*processed\r?$", report, re.MULTILINE), number
    assert len(quarantine.processing()) == 3
