"""What the AS2 tests share: keys and certificates made at run time, a manifest, OpenSSL as peer."""

from __future__ import annotations

import base64
import copy
import email
import email.policy
import hashlib
import re
import shutil
import subprocess
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from interlock.audit import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.crypto.pkix import certificate_pem, private_key_pem, self_signed_ca
from interlock.files.as2_profile import As2Flow, as2_flow
from interlock.files.as2_receive import As2Receiver, MdnDelivery
from interlock.files.quarantine import Quarantine
from interlock.replay.seen import MemorySeen
from interlock.testing.tls import LocalTls, make_tls

INTEGRATION = "edi-orders"
ORDERS = b"order_id,email,total\r\n1,ada@example.com,12.50\r\n"

_MANIFEST = """
version: 1
organisation:
  controller: {name: Example GmbH, contact: privacy@example.com}
systems:
  erp: {url: "https://erp.example:9443", location: DE}
  crm: {url: "https://crm.example", location: DE}
partners:
  acme:
    location: NL
    agreement: "TPA-2025-017 (signed 2025-03-01)"
    as2:
      as2_id: ACME
      our_id: EXAMPLE
      url: https://localhost:1/as2
      certificate: file:acme.pem
      ca: file:anchors.pem
      our_key: secret://acme/as2-key
      our_certificate: file:ours.pem
clients:
  file-sync: {auth: [mtls]}
integrations:
  edi-orders:
    type: b2b_edi
    source: erp
    target: crm
    client: file-sync
    purpose: Orders from ACME over AS2
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    files:
      partner: acme
      direction: inbound
      transport: as2
      format: csv
      csv_columns: [order_id, email, total]
"""


def _rsa_certificate(
    ca: x509.Certificate,
    ca_key: Any,
    name: str,
    *,
    bits: int = 2048,
    not_after: datetime | None = None,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(not_after or now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (test files only)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class Keys:
    """The partner's and our AS2 keys and certificates, a CA for both, and a TLS server."""

    folder: Path
    tls: LocalTls
    our_key: bytes

    def file(self, name: str) -> str:
        """A file of the set, as a path string for openssl."""
        return str(self.folder / name)


def make_keys(folder: Path) -> Keys:
    """A CA; ACME's and our RSA certificates; an expired and a stranger's; TLS for localhost."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = self_signed_ca("AS2 test CA", timedelta(days=3))
    acme, acme_key = _rsa_certificate(ca, ca_key, "ACME AS2")
    ours, our_key = _rsa_certificate(ca, ca_key, "EXAMPLE AS2")
    expired, expired_key = _rsa_certificate(
        ca, ca_key, "ACME AS2", not_after=datetime.now(UTC) - timedelta(days=1)
    )
    stranger_ca, stranger_ca_key = self_signed_ca("Stranger CA", timedelta(days=3))
    stranger, stranger_key = _rsa_certificate(stranger_ca, stranger_ca_key, "ACME AS2")
    tls = make_tls(folder / "tls")
    files = {
        "ca.pem": certificate_pem(ca),
        "anchors.pem": certificate_pem(ca) + tls.ca_file.read_bytes(),
        "acme.pem": certificate_pem(acme),
        "acme.key": key_pem(acme_key),
        "ours.pem": certificate_pem(ours),
        "expired.pem": certificate_pem(expired),
        "expired.key": key_pem(expired_key),
        "stranger.pem": certificate_pem(stranger),
        "stranger.key": key_pem(stranger_key),
        "ca.key": private_key_pem(ca_key),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return Keys(folder, tls, key_pem(our_key))


def manifest(
    keys: Keys,
    *,
    partner: dict[str, Any] | None = None,
    outbound: str | None = None,
    notify: dict[str, Any] | None = None,
    **files: Any,
) -> Manifest:
    """The example manifest in ``keys.folder``; ``partner`` and ``files`` override sections.

    ``outbound``: also an outbound AS2 integration of that name; ``notify``: the
    partner's ``notify:`` section (how it is told of refused files).
    """
    document: dict[str, Any] = yaml.safe_load(_MANIFEST)
    document["partners"]["acme"]["as2"].update(partner or {})
    if notify is not None:
        document["partners"]["acme"]["notify"] = notify
    document["integrations"][INTEGRATION]["files"].update(files)
    if outbound is not None:
        sending = copy.deepcopy(document["integrations"][INTEGRATION])
        sending["files"]["direction"] = "outbound"
        document["integrations"][outbound] = sending
    path = keys.folder / "interlock.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_manifest(path)


def flow(keys: Keys, loaded: Manifest, integration: str = INTEGRATION) -> As2Flow:
    """The AS2 integration with our key resolved from a test vault."""
    return as2_flow(loaded, integration, resolve=vault(keys), anchors={}, base=keys.folder)


def vault(keys: Keys) -> Callable[[str], bytes]:
    """A test vault holding our AS2 key."""
    return {"secret://acme/as2-key": keys.our_key}.__getitem__


@dataclass
class ReceiverRig:
    """A receiver over a quarantine in the keys folder, with memory audit and replay store."""

    receiver: As2Receiver
    quarantine: Quarantine
    audit: MemorySink


def receiver(
    keys: Keys,
    area: Path,
    *,
    files: dict[str, Any] | None = None,
    post_mdn: Callable[[MdnDelivery], Awaitable[str | None]] | None = None,
    **partner: Any,
) -> ReceiverRig:
    """A receiver of the example integration (``partner``: AS2 profile overrides; ``files``:
    the integration's; ``post_mdn``: how asynchronous MDNs are delivered)."""
    loaded = manifest(keys, partner=partner, **(files or {}))
    audit = MemorySink()
    quarantine = Quarantine(area, loaded, INTEGRATION, audit=audit, manifest_dir=keys.folder)
    rig = As2Receiver(
        flow(keys, loaded), quarantine=quarantine, seen=MemorySeen(), audit=audit, post_mdn=post_mdn
    )
    return ReceiverRig(rig, quarantine, audit)


def run_peer(
    command: list[str], stdin: bytes, *, what: str, timeout: float = 60, shown: int = 500
) -> bytes:
    """Run an independent implementation's ``command``; its stdout, or fail naming ``what``."""
    result = subprocess.run(  # noqa: S603
        command, input=stdin, capture_output=True, check=False, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"{what} failed: {result.stderr.decode()[:shown]}")
    return result.stdout


def openssl(*arguments: str, stdin: bytes = b"") -> bytes:
    """Run ``openssl ARGUMENTS`` (the independent implementation); its stdout, or fail."""
    command = [shutil.which("openssl") or "/usr/bin/openssl", *arguments]
    return run_peer(command, stdin, what=f"openssl {arguments[:2]}")


def payload(name: str = "orders.csv", data: bytes = ORDERS) -> bytes:
    """A payload MIME part as a partner's AS2 software writes it."""
    return (
        b"Content-Type: application/edi-x12\r\nContent-Transfer-Encoding: binary\r\n"
        b'Content-Disposition: attachment; filename="' + name.encode() + b'"\r\n\r\n' + data
    )


def openssl_message(
    keys: Keys,
    entity: bytes,
    *,
    signer: str = "acme",
    digest: str = "sha256",
    cipher: str = "-aes-256-cbc",
    oaep: bool = True,
    signed: bool = True,
    encrypted: bool = True,
) -> tuple[dict[str, str], bytes]:
    """An AS2 message built by OpenSSL: headers (lower-case) and the HTTP body."""
    message = entity
    extra_headers: dict[str, str] = {}
    if signed:
        message = openssl(
            "cms", "-sign", "-binary", "-md", digest, "-signer", keys.file(f"{signer}.pem"),
            "-inkey", keys.file(f"{signer}.key"), stdin=entity,
        )  # fmt: skip
    if encrypted:
        extra = ["-keyopt", "rsa_padding_mode:oaep"] if oaep else []
        body = openssl(
            "cms", "-encrypt", "-binary", cipher, "-outform", "DER", "-recip", keys.file("ours.pem"),
            *extra, stdin=message,
        )  # fmt: skip
        content_type = 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'
    else:
        parsed = email.message_from_bytes(message, policy=email.policy.compat32)
        content_type = " ".join(str(parsed["Content-Type"]).split())
        if parsed["Content-Transfer-Encoding"] is not None:
            extra_headers["content-transfer-encoding"] = str(parsed["Content-Transfer-Encoding"])
        body = re.split(rb"\r?\n\r?\n", message, maxsplit=1)[1]
    headers = {
        "as2-version": "1.2",
        "as2-from": "ACME",
        "as2-to": "EXAMPLE",
        "message-id": "<20260101-1@acme.example>",
        "content-type": content_type,
        "disposition-notification-to": "edi@acme.example",
        "disposition-notification-options": (
            "signed-receipt-protocol=optional, pkcs7-signature; "
            "signed-receipt-micalg=optional, sha-256"
        ),
        **extra_headers,
    }
    return headers, body


def write_crl(keys: Keys, name: str, *, revoke: tuple[str, ...] = ()) -> str:
    """A CRL of the test CA in ``keys.folder/NAME`` revoking the certificates named; ``file:``."""
    ca = x509.load_pem_x509_certificate((keys.folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((keys.folder / "ca.key").read_bytes(), None)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=1))
    )
    for certificate_file in revoke:
        certificate = x509.load_pem_x509_certificate((keys.folder / certificate_file).read_bytes())
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(certificate.serial_number)
            .revocation_date(now - timedelta(minutes=1))
            .build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    (keys.folder / name).write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return f"file:{name}"


class OpenSslPartner(BaseHTTPRequestHandler):
    """ACME's AS2 server: OpenSSL opens and verifies, then signs an MDN (``mic_override``)."""

    keys: ClassVar[Keys]
    received: ClassVar[list[bytes]] = []
    posted: ClassVar[int] = 0  # every POST, opened or not
    mic_override: ClassVar[str | None] = None
    mdn_signer: ClassVar[str] = "acme"  # whose key and certificate (KEYS.folder/NAME.pem) sign
    lock: ClassVar[threading.Lock] = threading.Lock()
    # What opens the layers between the envelope and the signature (compression), in order.
    after_decrypt: ClassVar[list[Callable[[bytes], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        keys = self.keys
        with self.lock:
            type(self).posted += 1
        signed = openssl(
            "cms", "-decrypt", "-binary", "-inform", "DER", "-recip", keys.file("acme.pem"),
            "-inkey", keys.file("acme.key"), stdin=body,
        )  # fmt: skip
        for opener in self.after_decrypt:
            signed = opener(signed)
        content = openssl(
            "cms", "-verify", "-CAfile", keys.file("ca.pem"), "-certfile", keys.file("ours.pem"),
            "-nointern", stdin=signed,
        )  # fmt: skip
        with self.lock:
            self.received.append(content)
        options = self.headers["Disposition-Notification-Options"]
        algorithm = re.search(r"micalg=required, (sha-\d+)", options)
        assert algorithm is not None
        name = algorithm.group(1)
        digest = base64.b64encode(hashlib.new(name.replace("-", ""), content).digest()).decode()
        report = (
            'Content-Type: multipart/report; report-type=disposition-notification; boundary="b1"'
            "\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nReceived.\r\n--b1\r\n"
            "Content-Type: message/disposition-notification\r\n\r\n"
            f"Original-Message-ID: {self.headers['Message-ID']}\r\n"
            f"Received-Content-MIC: {self.mic_override or f'{digest}, {name}'}\r\n"
            "Disposition: automatic-action/MDN-sent-automatically; processed\r\n\r\n--b1--\r\n"
        ).encode()
        mdn = openssl(
            "cms", "-sign", "-md", "sha256", "-signer", keys.file(f"{self.mdn_signer}.pem"),
            "-inkey", keys.file(f"{self.mdn_signer}.key"), stdin=report,
        )  # fmt: skip
        head, body_out = re.split(rb"\r?\n\r?\n", mdn, maxsplit=1)
        content_type = re.search(rb"Content-Type:\s*(.+)", head, re.I)
        assert content_type is not None
        self.send_response(200)
        self.send_header("Content-Type", content_type.group(1).decode().strip())
        self.send_header("AS2-From", "ACME")
        self.send_header("AS2-To", "EXAMPLE")
        self.send_header("Content-Length", str(len(body_out)))
        self.end_headers()
        self.wfile.write(body_out)

    def log_message(self, *_: object) -> None:
        """Quiet."""
