"""The per-request check of client certificates: revocation, validity period, evidence."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from interlock.audit.sink import MemorySink
from interlock.config.manifest import Manifest
from interlock.crypto.pkix import certificate_pem, issue_client_certificate, self_signed_ca
from interlock.errors import Refusal
from interlock.gateway.audit_trail import GatewayAudit
from interlock.gateway.certificate_status import CertificateFacts, CertificateStatus
from interlock.gateway.mtls import ClientCertificates
from interlock.gateway.problems import REFUSALS
from interlock.testing.clock import ManualClock

START = datetime(2030, 1, 1, tzinfo=UTC)
MANIFEST = """
version: 1
systems:
  erp: {url: "https://erp.internal", location: DE}
roles:
  reader: {scopes: [orders.read]}
clients:
  cert-sync: {auth: [mtls, oauth2], roles: [reader]}
integrations:
  f:
    source: erp
    target: erp
    client: cert-sync
    purpose: test
    legal_basis: contract
    retention: 1d
    routes:
      - {method: GET, path: "/a", upstream: erp, scope: orders.read}
"""
FACTS = CertificateFacts(0x7A3F, START, START + timedelta(days=30), "cert-sync")


def _der(client: str, *, now: datetime | None = None) -> tuple[bytes, int]:
    """A client certificate (DER) naming ``client``, and its serial."""
    ca, ca_key = self_signed_ca("Test CA", timedelta(days=400), now=now)
    identity = f"spiffe://interlock.test/client/{client}"
    certificate, _ = issue_client_certificate(ca, ca_key, identity, timedelta(days=1), now=now)
    der = ssl.PEM_cert_to_DER_cert(certificate_pem(certificate).decode())
    return der, certificate.serial_number


def _status(revoked: set[int], clock: ManualClock) -> tuple[CertificateStatus, MemorySink]:
    sink = MemorySink()
    return CertificateStatus(
        revoked.__contains__, GatewayAudit(sink), "interlock.test", clock
    ), sink


def test_a_usable_certificate_passes_and_leaves_no_entry() -> None:
    """Within its validity period and not revoked: nothing happens."""
    status, sink = _status(set(), ManualClock(START + timedelta(days=1)))
    status.check(FACTS, "192.0.2.1")
    assert sink.entries == []


@pytest.mark.parametrize(
    ("revoked", "moment", "code", "reason"),
    [
        ({0x7A3F}, START + timedelta(days=1), "certificate-revoked", "revoked"),
        (set(), START + timedelta(days=30, seconds=1), "certificate-expired", "expired"),
        (set(), START - timedelta(seconds=1), "certificate-expired", "not-yet-valid"),
    ],
)
def test_an_unusable_certificate_is_refused_audited_and_ends_the_connection(
    revoked: set[int], moment: datetime, code: str, reason: str
) -> None:
    """A mapped 401 refusal that closes the connection, and a certificate.refuse entry."""
    status, sink = _status(revoked, ManualClock(moment))
    with pytest.raises(Refusal) as refused:
        status.check(FACTS, "192.0.2.1")
    assert refused.value.code == code
    assert REFUSALS[code].status == 401
    assert refused.value.headers["Connection"] == "close"
    assert "7a3f" in refused.value.log_reason
    (entry,) = sink.entries
    assert (entry.action, entry.actor, entry.reason) == (
        "certificate.refuse",
        "client:cert-sync",
        reason,
    )
    assert entry.details == {"at": "request", "serial": "7a3f"}


def test_an_unreadable_certificate_is_refused() -> None:
    """Fail closed: a certificate the check cannot read is not used."""
    status, sink = _status(set(), ManualClock(START))
    with pytest.raises(Refusal) as refused:
        status.check(None, None)
    assert refused.value.code in REFUSALS
    assert sink.entries[0].actor == "anonymous"


def test_a_certificate_refused_at_the_handshake_is_audited_with_its_client() -> None:
    """The handshake's refusal (OpenSSL's verdict) is evidence too: serial and client."""
    der, serial = _der("cert-sync")
    status, sink = _status(set(), ManualClock(START))
    status.refused_at_handshake(der, "revoked")
    (entry,) = sink.entries
    assert (entry.action, entry.actor, entry.reason) == (
        "certificate.refuse",
        "client:cert-sync",
        "revoked",
    )
    assert entry.details == {"at": "handshake", "serial": f"{serial:x}"}


def test_a_revoked_certificate_belongs_to_no_client() -> None:
    """The tls_client_auth and token-binding hook: only a certificate usable now names a client."""
    manifest = Manifest.model_validate(yaml.safe_load(MANIFEST))
    der, serial = _der("cert-sync", now=START)
    revoked: set[int] = set()
    status, _ = _status(revoked, ManualClock(START + timedelta(hours=1)))
    certificates = ClientCertificates(manifest, status)
    assert certificates.belongs_to("cert-sync", der)
    revoked.add(serial)
    assert not certificates.belongs_to("cert-sync", der)
