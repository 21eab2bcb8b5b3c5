"""Rotate a TLS certificate through Interlock's PKI: a new key and certificate, the old revoked.

Settings: ``client`` (a manifest client that may use mutual TLS: a client
certificate for its SPIFFE ID; another name is refused at every rotation,
before anything is issued)
or ``hosts`` (comma-separated DNS names and IP addresses: a server
certificate), and optionally ``lifetime`` in days (default 90, so that the
default schedule, rotate every 60 days and overdue at 80, renews well before
expiry). The secret's value is a PEM bundle: the certificate, its issuing
intermediate, then the private key.

The PKI issues on *create*: the new certificate is valid at once but nobody
holds it until the vault serves it, so *set* has nothing to change. *Test*
checks the bundle (key matches certificate, issued by this PKI, in force);
*retire* revokes the old certificate (reason ``superseded``), so it appears
on the CRL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from interlock.crypto.pkix import (
    Certificate,
    key_matches,
    load_certificates_pem,
    load_private_key_pem,
)
from interlock.errors import InterlockError, InvalidRequestError, NotFoundError
from interlock.pki import Issued, Pki
from interlock.pki.enrolment import check_mtls_client, issue_for_client
from interlock.pki.rfc5280 import serial_hex
from interlock.secrets.rotators.base import Credential, RotationError, RotatorContext

__all__ = ["TlsCertificateRotator", "build"]

_DEFAULT_DAYS = 90


class TlsCertificateRotator:
    """Issues a certificate and key per rotation; revokes the previous certificate on retire."""

    def __init__(self, pki: Pki, issue: Callable[[Pki], Issued]) -> None:
        """``issue`` makes the new certificate (client or server, with its lifetime)."""
        self._pki = pki
        self._issue = issue

    def generate(self, current: Credential) -> bytes:
        """A new certificate and private key from the PKI, as one PEM bundle."""
        issued = self._issue(self._pki)
        return issued.certificate_pem + issued.private_key_pem

    def set(self, pending: Credential, current: Credential) -> None:
        """Nothing to change: the PKI's certificate is valid once issued."""

    def test(self, pending: Credential) -> None:
        """The key matches the certificate, which this PKI issued and has not revoked."""
        leaf = _leaf(pending)
        try:
            key = load_private_key_pem(pending.value.reveal())
        except ValueError:
            raise RotationError(f"the new bundle of {pending.name} has no usable key") from None
        if not key_matches(leaf, key):
            raise RotationError(f"the key of {pending.name} does not match its certificate")
        try:
            info = self._pki.get(serial_hex(leaf.serial_number))
        except InterlockError:
            raise RotationError(
                f"this PKI did not issue the certificate of {pending.name}"
            ) from None
        if info.status != "active":
            raise RotationError(f"the new certificate of {pending.name} is {info.status}")

    def retire(self, old: Credential, current: Credential) -> None:
        """Revoke the old certificate (revoking it again changes nothing)."""
        try:
            leaf = _leaf(old)
        except RotationError:
            return  # not a certificate: nothing to end
        if leaf.serial_number == _leaf(current).serial_number:
            return
        try:
            self._pki.revoke(serial_hex(leaf.serial_number), "superseded")
        except NotFoundError:
            return  # not issued by this PKI: nothing to revoke here


def _leaf(credential: Credential) -> Certificate:
    try:
        chain = load_certificates_pem(credential.value.reveal())
    except ValueError:
        chain = []
    if not chain:
        raise RotationError(f"{credential.name} holds no PEM certificate")
    return chain[0]


def build(config: Mapping[str, Any], context: RotatorContext) -> TlsCertificateRotator:
    """The rotator for ``-o client=NAME`` or ``-o hosts=a.example,10.0.0.1 [-o lifetime=DAYS]``."""
    lifetime = timedelta(days=int(config.get("lifetime") or _DEFAULT_DAYS))
    client, hosts = config.get("client"), config.get("hosts")
    if bool(client) == bool(hosts):
        raise InvalidRequestError("the tls_certificate rotator needs -o client=... or -o hosts=...")
    if client:
        name = str(client)
        check_mtls_client(context.manifest(), name)  # refused before anything is issued
        # ... and again when issuing: the manifest may change while the rotator lives.
        return TlsCertificateRotator(
            context.pki(), lambda pki: issue_for_client(pki, context.manifest(), name, lifetime)
        )
    names = [h.strip() for h in str(hosts).split(",") if h.strip()]
    return TlsCertificateRotator(context.pki(), lambda pki: pki.issue_server(names, lifetime))
