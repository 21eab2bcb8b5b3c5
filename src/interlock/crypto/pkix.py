"""X.509 building blocks for Interlock's own CA, on ``cryptography``'s x509 API.

ECDSA P-256 keys and SHA-256 signatures throughout: supported by every TLS
stack Interlock talks to, small and fast. The one exception is the AS2
certificate (:func:`issue_as2_certificate`): RSA 3072, because AS2 partners
sign and encrypt with RSA. Nothing here decides policy (lifetimes, names);
:mod:`interlock.pki` does.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "BACKDATE",
    "Certificate",
    "EndEntityKey",
    "PrivateKey",
    "Revocation",
    "certificate_pem",
    "certificate_revocation_list",
    "crl_der",
    "intermediate_ca",
    "is_ca",
    "issue_as2_certificate",
    "issue_client_certificate",
    "issue_server_certificate",
    "issued_by",
    "key_matches",
    "load_certificate_pem",
    "load_certificates_pem",
    "load_crl_pem",
    "load_crls_pem",
    "load_private_key_pem",
    "new_private_key",
    "private_key_pem",
    "recertify_ca",
    "self_signed_ca",
]

Certificate = x509.Certificate
PrivateKey = ec.EllipticCurvePrivateKey
EndEntityKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey  # RSA: the AS2 certificate only
BACKDATE: Final = timedelta(minutes=5)  # tolerate small clock skew between hosts
_BACKDATE: Final = BACKDATE
AS2_RSA_BITS: Final = 3072  # NIST SP 800-57: 128-bit security, as P-256


def new_private_key() -> PrivateKey:
    """A fresh ECDSA P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: EndEntityKey) -> bytes:
    """PKCS#8 PEM, unencrypted: callers seal it or write it 0600."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_pem(data: bytes) -> PrivateKey:
    """Parse a PEM private key; only P-256 ECDSA keys are accepted."""
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("expected an ECDSA P-256 private key")
    return key


def certificate_pem(certificate: Certificate) -> bytes:
    """PEM encoding of ``certificate``."""
    return certificate.public_bytes(serialization.Encoding.PEM)


def load_certificate_pem(data: bytes) -> Certificate:
    """Parse a PEM certificate."""
    return x509.load_pem_x509_certificate(data)


def load_certificates_pem(data: bytes) -> list[Certificate]:
    """Parse every certificate of a PEM chain, leaf first as written."""
    return x509.load_pem_x509_certificates(data)


def load_crl_pem(data: bytes) -> x509.CertificateRevocationList:
    """Parse a PEM certificate revocation list."""
    return x509.load_pem_x509_crl(data)


def load_crls_pem(data: bytes) -> list[x509.CertificateRevocationList]:
    """Parse every CRL of a PEM file (one per issuing CA), in order."""
    marker = b"-----BEGIN X509 CRL-----"
    return [load_crl_pem(marker + block) for block in data.split(marker)[1:]]


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    """A CRL in DER, as served over HTTP (RFC 5280 §4.2.1.13)."""
    return crl.public_bytes(serialization.Encoding.DER)


def is_ca(certificate: Certificate) -> bool:
    """Whether ``certificate`` says it is a CA (basic constraints ``cA``)."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return bool(constraints.value.ca)


def key_matches(certificate: Certificate, key: PrivateKey) -> bool:
    """Whether ``key`` is the private half of ``certificate``'s public key."""
    return certificate.public_key() == key.public_key()


def issued_by(certificate: Certificate, issuer: Certificate) -> bool:
    """Whether ``issuer`` signed ``certificate`` (its name and its signature, not the validity)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def self_signed_ca(
    common_name: str,
    lifetime: timedelta,
    *,
    path_length: int = 0,
    now: datetime | None = None,
) -> tuple[Certificate, PrivateKey]:
    """A root CA; by default it may sign end-entity certificates only (path length 0)."""
    key = new_private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = now or datetime.now(UTC)
    return _ca_certificate(name, key, key, name, start, start + lifetime, path_length), key


def recertify_ca(
    ca_certificate: Certificate, key: PrivateKey, *, path_length: int, now: datetime | None = None
) -> Certificate:
    """A new self-signed certificate for an existing CA's name, key and validity end.

    Certificates the old one signed still verify against it: the same name and
    key, hence the same subject key identifier.
    """
    if not key_matches(ca_certificate, key):
        raise ValueError("the key does not belong to this CA certificate")
    return _ca_certificate(
        ca_certificate.subject,
        key,
        key,
        ca_certificate.subject,
        now or datetime.now(UTC),
        ca_certificate.not_valid_after_utc,
        path_length,
    )


def intermediate_ca(
    root_certificate: Certificate,
    root_key: PrivateKey,
    common_name: str,
    lifetime: timedelta,
    *,
    now: datetime | None = None,
) -> tuple[Certificate, PrivateKey]:
    """A fresh key and a CA certificate for it, signed by the root, that signs leaves only."""
    key = new_private_key()
    start = now or datetime.now(UTC)
    end = min(start + lifetime, root_certificate.not_valid_after_utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = _ca_certificate(name, key, root_key, root_certificate.subject, start, end, 0)
    return certificate, key


def _ca_certificate(  # noqa: PLR0917  (private; three public callers name each role)
    subject: x509.Name,
    key: PrivateKey,
    signer: PrivateKey,
    issuer: x509.Name,
    start: datetime,
    end: datetime,
    path_length: int,
) -> Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - _BACKDATE)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if signer is not key:
        # RFC 5280 §4.2.1.1: required in every certificate that is not self-signed.
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def issue_client_certificate(
    ca_certificate: Certificate,
    ca_key: PrivateKey,
    identity: str,
    lifetime: timedelta,
    *,
    now: datetime | None = None,
) -> tuple[Certificate, PrivateKey]:
    """A TLS client certificate whose identity is the URI SAN ``identity``."""
    san = [x509.UniformResourceIdentifier(identity)]
    return _issue_end_entity(
        ca_certificate,
        ca_key,
        identity[-64:],
        san,
        ExtendedKeyUsageOID.CLIENT_AUTH,
        lifetime,
        now or datetime.now(UTC),
    )


def issue_server_certificate(
    ca_certificate: Certificate,
    ca_key: PrivateKey,
    hosts: Sequence[str],
    lifetime: timedelta,
    *,
    now: datetime | None = None,
) -> tuple[Certificate, PrivateKey]:
    """A TLS server certificate for ``hosts`` (DNS names or IP addresses)."""
    if not hosts:
        raise ValueError("a server certificate needs at least one host name")
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return _issue_end_entity(
        ca_certificate,
        ca_key,
        hosts[0],
        names,
        ExtendedKeyUsageOID.SERVER_AUTH,
        lifetime,
        now or datetime.now(UTC),
    )


def issue_as2_certificate(
    ca_certificate: Certificate,
    ca_key: PrivateKey,
    name: str,
    lifetime: timedelta,
    *,
    now: datetime | None = None,
) -> tuple[Certificate, rsa.RSAPrivateKey]:
    """Interlock's AS2 (S/MIME) certificate: RSA 3072, signs and is encrypted to.

    Key usage digitalSignature and keyEncipherment (RFC 8550 §4.4.2: RSA key
    transport), extended key usage emailProtection (what ``openssl cms``
    checks as the ``smimesign`` purpose). The subject is ``CN=name``; no
    alternative name (RFC 5280 §4.2.1.6 needs one only for an empty subject).
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=AS2_RSA_BITS)
    certificate = _end_entity(
        ca_certificate,
        ca_key,
        key,
        name,
        None,
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        lifetime,
        now or datetime.now(UTC),
        key_encipherment=True,
    )
    return certificate, key


def _issue_end_entity(  # noqa: PLR0917  (private; the two callers above name every role)
    ca_certificate: Certificate,
    ca_key: PrivateKey,
    common_name: str,
    names: Sequence[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    lifetime: timedelta,
    now: datetime,
) -> tuple[Certificate, PrivateKey]:
    """A fresh key and a certificate for it: never a CA, signature use only, one EKU."""
    key = new_private_key()
    certificate = _end_entity(ca_certificate, ca_key, key, common_name, names, usage, lifetime, now)
    return certificate, key


def _end_entity(  # noqa: PLR0917  (private; the callers above name every role)
    ca_certificate: Certificate,
    ca_key: PrivateKey,
    key: EndEntityKey,
    common_name: str,
    names: Sequence[x509.GeneralName] | None,
    usage: x509.ObjectIdentifier,
    lifetime: timedelta,
    now: datetime,
    *,
    key_encipherment: bool = False,
) -> Certificate:
    """A certificate for ``key``: never a CA, one EKU; key encipherment only when asked."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + lifetime, ca_certificate.not_valid_after_utc))
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=key_encipherment,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


@dataclass(frozen=True)
class Revocation:
    """One CRL entry: a serial, when it was revoked, and an RFC 5280 §5.3.1 reason name."""

    serial: int
    revoked_at: datetime
    reason: str


def certificate_revocation_list(
    issuer_certificate: Certificate,
    issuer_key: PrivateKey,
    revoked: Sequence[Revocation],
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """A PEM CRL signed by the issuing CA, one entry per revocation."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        # RFC 5280 §5.2.3: conforming CRL issuers MUST include the CRL number.
        .add_extension(x509.CRLNumber(int(this_update.timestamp() * 1000)), critical=False)
    )
    for entry in revoked:
        item = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        # RFC 5280 §5.3.1: the reason code SHOULD be absent rather than unspecified.
        if entry.reason != "unspecified":
            item = item.add_extension(
                x509.CRLReason(x509.ReasonFlags(entry.reason)), critical=False
            )
        builder = builder.add_revoked_certificate(item.build())
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
