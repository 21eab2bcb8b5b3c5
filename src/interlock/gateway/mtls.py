"""Client certificates: who a certificate verified by the TLS handshake belongs to.

The handshake has already checked the chain (to the configured CAs), the
validity period, the EKU (``clientAuth``) and, with Interlock's PKI, the CRL.
A resumed session or a kept-alive connection does not handshake again, so each
request's certificate is checked once more against the current revocation list
and the clock (:mod:`interlock.gateway.certificate_status`). What is left is the
mapping: the certificate's URI SAN ``spiffe://TRUST-DOMAIN/client/NAME`` names
the manifest client ``NAME`` (which must list ``mtls`` in its ``auth``). The
RFC 8705 thumbprint (``x5t#S256``) binds access tokens to the certificate.
"""

from __future__ import annotations

from interlock.config.manifest import Manifest
from interlock.gateway.certificate_status import CertificateFacts, CertificateStatus
from interlock.oauth.thumbprints import certificate_thumbprint

__all__ = ["ClientCertificates", "certificate_thumbprint"]


class ClientCertificates:
    """Maps verified client certificates to manifest clients by their SPIFFE URI SAN."""

    def __init__(self, manifest: Manifest, status: CertificateStatus) -> None:
        """Clients of ``manifest``; ``status`` reads certificates and says if still usable."""
        self.manifest = manifest
        self._status = status

    def check(self, der: bytes, remote: str | None) -> None:
        """Refuse a certificate revoked, expired or not yet valid now (a 401, audited)."""
        self._status.check(self.facts(der), remote)

    def identity(self, der: bytes) -> str | None:
        """The client name in the certificate's URI SAN (not checked against the manifest)."""
        facts = self.facts(der)
        return facts.client if facts is not None else None

    def client_for(self, der: bytes) -> str | None:
        """The manifest client (with ``mtls`` in its auth) this certificate identifies."""
        name = self.identity(der)
        spec = self.manifest.clients.get(name) if name is not None else None
        return name if spec is not None and "mtls" in spec.auth else None

    def belongs_to(self, client_id: str, certificate: bytes) -> bool:
        """The ``tls_client_auth`` hook (RFC 8705 §2.1.1): this certificate names ``client_id``.

        Only a certificate usable now: a revoked or expired one belongs to nobody
        (neither authenticates nor binds a token).
        """
        if self._status.problem(self.facts(certificate)) is not None:
            return False
        return self.client_for(certificate) == client_id

    def facts(self, der: bytes) -> CertificateFacts | None:
        """Serial, validity and client name of a certificate; None if it cannot be read."""
        return self._status.facts(der)
