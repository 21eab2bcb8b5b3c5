"""The deployment's local CA (``pki:internal`` in the manifest), for existing callers.

:class:`LocalCA` is the small face the gateway, the demo and ``interlock init``
use: its :attr:`~LocalCA.certificate` is the PKI's root (the trust anchor,
written to ``ca.pem``), and the certificates it issues are signed by the
issuing intermediate and returned with it as a chain. They are recorded as
*ephemeral* (their key lives in the asking process only, which issues a new
one at every start), so renewal and expiry monitoring leave them alone.
Everything else lives in :class:`interlock.pki.authority.Pki`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Engine

from interlock.clock import Clock, utc_now
from interlock.crypto import Keyring
from interlock.crypto.pkix import Certificate, certificate_pem
from interlock.pki.authority import DEFAULT_LIFETIME, Issued, Pki

__all__ = ["LOCAL_CA_NAME", "IssuedCertificate", "LocalCA", "ensure_local_ca"]

LOCAL_CA_NAME: Final = "internal"
SERVER_LIFETIME: Final = DEFAULT_LIFETIME
# Certificates issued through LocalCA carry URIs given in full, so the trust
# domain is not used to build one; the PKI needs a value all the same.
_UNUSED_TRUST_DOMAIN: Final = "interlock.local"


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate chain (leaf, intermediate) and the leaf's key, both PEM.

    Write the key 0600 or keep it in memory.
    """

    certificate_pem: bytes
    private_key_pem: bytes = field(repr=False)
    not_after: datetime


class LocalCA:
    """Handle on the local PKI: the root certificate is public, the keys stay sealed."""

    def __init__(self, pki: Pki, certificate: Certificate) -> None:
        """Internal: use :func:`ensure_local_ca`."""
        self._pki = pki
        self.certificate = certificate

    @property
    def certificate_pem(self) -> bytes:
        """The root CA certificate, for clients' trust stores (``curl --cacert``)."""
        return certificate_pem(self.certificate)

    def issue_server(
        self, hosts: Sequence[str], lifetime: timedelta = SERVER_LIFETIME
    ) -> IssuedCertificate:
        """A server certificate for ``hosts``, signed by the issuing CA, with its chain."""
        return _legacy(self._pki.issue_server(hosts, lifetime, ephemeral=True))

    def issue_client(
        self, identity: str, lifetime: timedelta = SERVER_LIFETIME
    ) -> IssuedCertificate:
        """A client certificate for the URI ``identity`` (e.g. ``spiffe://.../client/x``)."""
        return _legacy(self._pki.issue_client_identity(identity, lifetime, ephemeral=True))

    def __repr__(self) -> str:
        return f"LocalCA(subject={self.certificate.subject.rfc4514_string()!r})"


def ensure_local_ca(
    engine: Engine, keyring: Keyring, deployment_id: str, *, now: Clock = utc_now
) -> LocalCA:
    """The deployment's PKI (root and intermediate), created once, race-safe, if missing.

    ``now`` dates what it creates and issues (:mod:`interlock.clock`).
    """
    pki = Pki(engine, keyring, deployment_id, _UNUSED_TRUST_DOMAIN, now)
    return LocalCA(pki, pki.root_certificate())


def _legacy(issued: Issued) -> IssuedCertificate:
    return IssuedCertificate(issued.certificate_pem, issued.private_key_pem, issued.not_after)
