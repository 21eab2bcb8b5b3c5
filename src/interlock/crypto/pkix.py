"""X.509 building blocks for Interlock's own CA, on ``cryptography``'s x509 API.

ECDSA P-256 keys and SHA-256 signatures throughout: supported by every TLS
stack Interlock talks to, small and fast. Nothing here decides policy
(lifetimes, names); :mod:`interlock.pki` does.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "Certificate",
    "PrivateKey",
    "certificate_pem",
    "issue_client_certificate",
    "issue_server_certificate",
    "load_certificate_pem",
    "load_private_key_pem",
    "new_private_key",
    "private_key_pem",
    "self_signed_ca",
]

Certificate = x509.Certificate
PrivateKey = ec.EllipticCurvePrivateKey
_BACKDATE = timedelta(minutes=5)  # tolerate small clock skew between hosts


def new_private_key() -> PrivateKey:
    """A fresh ECDSA P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: PrivateKey) -> bytes:
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


def self_signed_ca(common_name: str, lifetime: timedelta) -> tuple[Certificate, PrivateKey]:
    """A root CA that may sign end-entity certificates only (path length 0)."""
    key = new_private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def issue_client_certificate(
    ca_certificate: Certificate,
    ca_key: PrivateKey,
    identity: str,
    lifetime: timedelta,
) -> tuple[Certificate, PrivateKey]:
    """A TLS client certificate whose identity is the URI SAN ``identity``."""
    san = [x509.UniformResourceIdentifier(identity)]
    return _issue_end_entity(
        ca_certificate, ca_key, identity[-64:], san, ExtendedKeyUsageOID.CLIENT_AUTH, lifetime
    )


def issue_server_certificate(
    ca_certificate: Certificate,
    ca_key: PrivateKey,
    hosts: Sequence[str],
    lifetime: timedelta,
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
        ca_certificate, ca_key, hosts[0], names, ExtendedKeyUsageOID.SERVER_AUTH, lifetime
    )


def _issue_end_entity(  # noqa: PLR0917  (private; the two callers above name every argument's role)
    ca_certificate: Certificate,
    ca_key: PrivateKey,
    common_name: str,
    names: Sequence[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    lifetime: timedelta,
) -> tuple[Certificate, PrivateKey]:
    """A fresh key and a certificate for it: never a CA, signature use only, one EKU."""
    key = new_private_key()
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + lifetime, ca_certificate.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
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
    return certificate, key
