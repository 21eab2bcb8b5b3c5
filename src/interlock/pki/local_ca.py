"""The deployment's local CA (``pki:internal`` in the manifest).

Created by ``interlock init`` (or on first use in a deployment that predates
it); its private key is sealed by the keyring and only ever opened in memory
to sign. It issues the gateway's own server certificate (``certificate:
auto``) and the certificates of sample or internal upstreams. The full PKI —
intermediate CA, client certificates, revocation — grows from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from interlock.crypto import Keyring
from interlock.crypto.pkix import (
    Certificate,
    certificate_pem,
    issue_client_certificate,
    issue_server_certificate,
    load_certificate_pem,
    load_private_key_pem,
    private_key_pem,
    self_signed_ca,
)
from interlock.pki.tables import AuthorityRow
from interlock.store.base import table_of

__all__ = ["LOCAL_CA_NAME", "IssuedCertificate", "LocalCA", "ensure_local_ca"]

LOCAL_CA_NAME: Final = "internal"
CA_LIFETIME: Final = timedelta(days=3650)
SERVER_LIFETIME: Final = timedelta(days=30)
_TABLE = table_of(AuthorityRow)


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and its private key, both PEM. Write the key 0600 or keep it in memory."""

    certificate_pem: bytes
    private_key_pem: bytes
    not_after: datetime


class LocalCA:
    """Handle on the local CA: its certificate is public, its key stays sealed."""

    def __init__(self, keyring: Keyring, certificate: Certificate, sealed_key: bytes) -> None:
        """Internal: use :func:`ensure_local_ca`."""
        self._keyring = keyring
        self._sealed_key = sealed_key
        self.certificate = certificate

    @property
    def certificate_pem(self) -> bytes:
        """The CA certificate, for clients' trust stores (``curl --cacert``)."""
        return certificate_pem(self.certificate)

    def issue_server(
        self, hosts: Sequence[str], lifetime: timedelta = SERVER_LIFETIME
    ) -> IssuedCertificate:
        """A server certificate for ``hosts`` signed by this CA."""
        ca_key = load_private_key_pem(self._keyring.open(self._sealed_key, _aad(LOCAL_CA_NAME)))
        certificate, key = issue_server_certificate(self.certificate, ca_key, hosts, lifetime)
        return IssuedCertificate(
            certificate_pem(certificate), private_key_pem(key), certificate.not_valid_after_utc
        )

    def issue_client(
        self, identity: str, lifetime: timedelta = SERVER_LIFETIME
    ) -> IssuedCertificate:
        """A client certificate for the URI ``identity`` (e.g. ``spiffe://.../client/x``)."""
        ca_key = load_private_key_pem(self._keyring.open(self._sealed_key, _aad(LOCAL_CA_NAME)))
        certificate, key = issue_client_certificate(self.certificate, ca_key, identity, lifetime)
        return IssuedCertificate(
            certificate_pem(certificate), private_key_pem(key), certificate.not_valid_after_utc
        )

    def __repr__(self) -> str:
        return f"LocalCA(subject={self.certificate.subject.rfc4514_string()!r})"


def ensure_local_ca(engine: Engine, keyring: Keyring, deployment_id: str) -> LocalCA:
    """The deployment's local CA, created (once, race-safe) if it does not exist yet."""
    with engine.connect() as connection:
        row = connection.execute(select(_TABLE).where(_TABLE.c.name == LOCAL_CA_NAME)).first()
    if row is not None:
        return LocalCA(keyring, load_certificate_pem(row.certificate_pem.encode()), row.private_key)
    certificate, key = self_signed_ca(f"Interlock local CA {deployment_id[:8]}", CA_LIFETIME)
    sealed = keyring.seal(private_key_pem(key), _aad(LOCAL_CA_NAME))
    try:
        with engine.begin() as connection:
            connection.execute(
                _TABLE.insert().values(
                    name=LOCAL_CA_NAME,
                    certificate_pem=certificate_pem(certificate).decode(),
                    private_key=sealed,
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        return ensure_local_ca(engine, keyring, deployment_id)
    return LocalCA(keyring, certificate, sealed)


def _aad(name: str) -> bytes:
    return f"interlock:pki:authority:{name}".encode()
