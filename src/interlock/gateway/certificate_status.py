"""Whether a client certificate may still be used: checked on every request, not once.

The TLS handshake verifies a client certificate once: its chain, validity
period, EKU and (with Interlock's PKI) the revocation list of that moment. A
client that resumes a TLS session, or keeps its connection open, does not
handshake again, so a certificate revoked or expired since would go on working
for the session's lifetime. Every request that uses the connection's
certificate (route authentication, certificate-bound tokens, ``tls_client_auth``)
therefore checks it again here, against the revocation list the listener
enforces now and the injected clock. A refused certificate ends the
connection, is logged and goes on the audit trail (``certificate.refuse``),
as is one the handshake itself refuses for the same reasons
(:meth:`CertificateStatus.refused_at_handshake`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from cryptography import x509

from interlock.clock import Clock, utc_now
from interlock.errors import Refusal
from interlock.gateway.audit_trail import GatewayAudit
from interlock.logs import get_logger

__all__ = ["CertificateFacts", "CertificateStatus", "Problem"]

Problem = Literal["revoked", "expired", "not-yet-valid", "unreadable"]

_log = get_logger("interlock.gateway.mtls")
_CACHE_MAX: Final = 4096
# RFC 7235 §4.1: a 401 carries a challenge. The client must connect again, so
# that its next certificate goes through a full handshake: the connection ends.
_HEADERS: Final = {"WWW-Authenticate": 'Bearer realm="interlock"', "Connection": "close"}
_REFUSALS: Final[dict[Problem, tuple[str, str]]] = {
    "revoked": ("certificate-revoked", "the client certificate has been revoked"),
    "expired": ("certificate-expired", "the client certificate has expired"),
    "not-yet-valid": ("certificate-expired", "the client certificate is not valid yet"),
    "unreadable": ("unauthorized", "the client certificate cannot be read"),
}


@dataclass(frozen=True)
class CertificateFacts:
    """What the status check needs of a certificate (parsed once, cached by its digest)."""

    serial: int
    not_before: datetime
    not_after: datetime
    client: str | None  # the name in its SPIFFE URI SAN, if any


class CertificateStatus:
    """Refuses certificates that are revoked or outside their validity period now."""

    def __init__(
        self,
        revokes: Callable[[int], bool],
        audit: GatewayAudit,
        trust_domain: str,
        now: Clock = utc_now,
    ) -> None:
        """``revokes(serial)``: the listener's current revocation list; evidence on ``audit``.

        Client names are read from SPIFFE IDs under ``spiffe://trust_domain/client/``.
        """
        self._revokes = revokes
        self._audit = audit
        self._prefix = f"spiffe://{trust_domain}/client/"
        self._now = now
        self._facts: dict[bytes, CertificateFacts | None] = {}
        self._lock = threading.Lock()

    def facts(self, der: bytes) -> CertificateFacts | None:
        """Serial, validity and client name of a certificate; None if it cannot be read."""
        digest = hashlib.sha256(der).digest()
        if digest in self._facts:
            return self._facts[digest]
        found = _read(der, self._prefix)
        with self._lock:
            if len(self._facts) >= _CACHE_MAX:
                self._facts.clear()
            self._facts[digest] = found
        return found

    def problem(self, facts: CertificateFacts | None) -> Problem | None:
        """Why the certificate may not be used now; None when it may."""
        if facts is None:
            return "unreadable"
        if self._revokes(facts.serial):
            return "revoked"
        now = self._now()
        if now > facts.not_after:
            return "expired"
        if now < facts.not_before:
            return "not-yet-valid"
        return None

    def check(self, facts: CertificateFacts | None, remote: str | None) -> None:
        """Refuse (401, connection closed; logged and audited) a certificate not usable now."""
        problem = self.problem(facts)
        if problem is None:
            return
        serial = self._record(facts, problem, remote, "request")
        code, detail = _REFUSALS[problem]
        raise Refusal(
            code,
            detail,
            headers=_HEADERS,
            log_reason=f"client certificate {problem} (serial {serial})",
        )

    def refused_at_handshake(self, der: bytes, problem: str) -> None:
        """Log and audit a certificate the TLS handshake refused (revoked, expired, not yet valid).

        Called by OpenSSL's verification, during the handshake: the caller's
        address is not known there.
        """
        self._record(self.facts(der), problem, None, "handshake")

    def _record(
        self, facts: CertificateFacts | None, problem: str, remote: str | None, at: str
    ) -> str | None:
        serial = f"{facts.serial:x}" if facts is not None else None
        client = facts.client if facts is not None else None
        _log.warning(
            "client certificate refused", reason=problem, serial=serial, client=client, at=at
        )
        self._audit.certificate_refused(client, serial, problem, remote, at)
        return serial


def _read(der: bytes, prefix: str) -> CertificateFacts | None:
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    return CertificateFacts(
        certificate.serial_number,
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
        _client(certificate, prefix),
    )


def _client(certificate: x509.Certificate, prefix: str) -> str | None:
    """The name in the certificate's one SPIFFE ID under ``prefix``, if it has exactly one."""
    try:
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.UniformResourceIdentifier)
    except (ValueError, x509.ExtensionNotFound):
        return None
    matching = [n for n in names if n.startswith(prefix)]
    if len(matching) != 1:
        return None  # none, or ambiguous: several identities in one certificate
    name = matching[0].removeprefix(prefix)
    return name if name and "/" not in name else None
