"""Revocation, the CRL, renewal and what is stored: the life of an issued certificate."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from cryptography import x509

from interlock.errors import InvalidRequestError
from interlock.pki import Pki, ensure_local_ca
from interlock.store import Deployment
from interlock.testing.clock import ManualClock


@pytest.fixture
def pki(deployment: Deployment, clock: ManualClock) -> Pki:
    """The PKI of a fresh deployment on each store backend, on a hand-moved clock."""
    return Pki(
        deployment.engine, deployment.keyring, deployment.deployment_id, "example.test", clock
    )


def _crl(pki: Pki) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(pki.crl_pem())


def _intermediate(pki: Pki) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki.chain_pem())


def test_crl_lists_revoked_certificates_with_reasons_signed_by_the_intermediate(
    pki: Pki, clock: ManualClock
) -> None:
    """Reason codes as given (none for unspecified, RFC 5280 §5.3.1); valid for one day."""
    compromised = pki.issue_client("a")
    retired = pki.issue_server(["b.test"])
    plain = pki.issue_client("c")
    kept = pki.issue_client("d")
    pki.revoke(compromised.serial, "keyCompromise")
    pki.revoke(retired.serial.upper(), reason="cessationOfOperation")
    pki.revoke(plain.serial)
    crl = _crl(pki)
    intermediate = _intermediate(pki)
    public_key = intermediate.public_key()
    assert crl.is_signature_valid(public_key)  # type: ignore[arg-type]
    assert crl.issuer == intermediate.subject
    assert crl.last_update_utc == clock.now.replace(microsecond=0)
    assert crl.next_update_utc == (clock.now + timedelta(days=1)).replace(microsecond=0)
    reasons: dict[int, x509.ReasonFlags | None] = {}
    for entry in crl:
        try:
            reasons[entry.serial_number] = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            reasons[entry.serial_number] = None
    assert reasons == {
        int(compromised.serial, 16): x509.ReasonFlags.key_compromise,
        int(retired.serial, 16): x509.ReasonFlags.cessation_of_operation,
        int(plain.serial, 16): None,
    }
    assert int(kept.serial, 16) not in reasons
    assert pki.revoked_serials() == frozenset(reasons)


def test_crl_signed_by_another_key_is_detected(pki: Pki) -> None:
    """The signature check is real: the root's key does not verify the CRL."""
    pki.revoke(pki.issue_client("a").serial)
    root_key = pki.root_certificate().public_key()
    assert not _crl(pki).is_signature_valid(root_key)  # type: ignore[arg-type]


def test_revoking_twice_keeps_the_first_revocation(pki: Pki, clock: ManualClock) -> None:
    """Idempotent: the second call changes neither the time nor the reason."""
    serial = pki.issue_client("a").serial
    pki.revoke(serial, "keyCompromise")
    first = pki.get(serial)
    clock.now += timedelta(hours=1)
    pki.revoke(serial, "superseded")
    assert pki.get(serial) == first
    assert first.status == "revoked"
    assert first.revocation_reason == "keyCompromise"
    assert first.revoked_at == clock.now - timedelta(hours=1)
    assert len(_crl(pki)) == 1


@pytest.mark.parametrize("reason", ["certificateHold", "removeFromCRL", "cACompromise", "", "x"])
def test_unknown_or_unfit_reasons_are_refused(pki: Pki, reason: str) -> None:
    """Only RFC 5280 reasons that fit an end-entity certificate; nothing is revoked."""
    serial = pki.issue_client("a").serial
    with pytest.raises(InvalidRequestError, match="revocation reason"):
        pki.revoke(serial, reason)
    assert pki.get(serial).revoked_at is None


def test_expired_revocations_leave_the_crl(pki: Pki, clock: ManualClock) -> None:
    """Once a revoked certificate has expired, the CRL no longer needs to name it."""
    short = pki.issue_client("a", timedelta(hours=2))
    long = pki.issue_client("b")
    pki.revoke(short.serial)
    pki.revoke(long.serial)
    clock.now += timedelta(hours=3)
    assert [entry.serial_number for entry in _crl(pki)] == [int(long.serial, 16)]
    assert pki.revoked_serials() == {int(long.serial, 16)}


def test_renewal_keeps_the_names_with_a_new_key_and_the_old_stays_valid(
    pki: Pki, clock: ManualClock
) -> None:
    """Same SANs and lifetime, fresh key and serial; the old is marked renewed, not revoked."""
    old = pki.issue_server(["api.test", "10.0.0.1"], timedelta(hours=12))
    clock.now += timedelta(hours=6)
    new = pki.renew(old.serial)
    old_cert = x509.load_pem_x509_certificate(old.certificate_pem)
    new_cert = x509.load_pem_x509_certificate(new.certificate_pem)
    san = x509.SubjectAlternativeName
    assert (
        new_cert.extensions.get_extension_for_class(san).value
        == old_cert.extensions.get_extension_for_class(san).value
    )
    assert new_cert.public_key() != old_cert.public_key()
    assert new.serial != old.serial
    assert new.not_after == clock.now + timedelta(hours=12)
    before = pki.get(old.serial)
    assert (before.status, before.replaced_by, before.revoked_at) == ("renewed", new.serial, None)
    assert pki.get(new.serial).status == "active"
    assert pki.revoked_serials() == frozenset()


def test_renewal_of_a_client_keeps_its_identity_and_may_change_the_lifetime(
    pki: Pki, clock: ManualClock
) -> None:
    """A given lifetime wins over the old one; the URI SAN is unchanged."""
    old = pki.issue_client("app")
    new = pki.renew(old.serial, timedelta(days=7))
    assert new.not_after == clock.now + timedelta(days=7)
    info = pki.get(new.serial)
    assert (info.kind, info.name, info.identity) == (
        "client",
        "app",
        "spiffe://example.test/client/app",
    )


def test_renewed_and_revoked_certificates_are_not_renewed_again(pki: Pki) -> None:
    """Renewing twice would hand out two live successors; a revoked one needs a new issue."""
    first = pki.issue_client("a")
    second = pki.renew(first.serial)
    with pytest.raises(InvalidRequestError, match=f"already renewed as {second.serial}"):
        pki.renew(first.serial)
    pki.revoke(second.serial, "keyCompromise")
    with pytest.raises(InvalidRequestError, match="revoked"):
        pki.renew(second.serial)
    assert len(pki.list(include_revoked=True)) == 2


def test_due_for_renewal_follows_the_clock(pki: Pki, clock: ManualClock) -> None:
    """In-use certificates expiring within the window (or already expired), soonest first."""
    soon = pki.issue_client("soon", timedelta(days=10))
    later = pki.issue_server(["later.test"], timedelta(days=30))
    pki.issue_client("far", timedelta(days=60))
    revoked = pki.issue_client("gone", timedelta(days=5))
    pki.revoke(revoked.serial)
    pki.issue_server(["gateway.test"], timedelta(days=2), ephemeral=True)  # never due
    assert [c.serial for c in pki.due_for_renewal(timedelta(days=14))] == [soon.serial]
    clock.now += timedelta(days=20)
    due = pki.due_for_renewal(timedelta(days=14))
    assert [(c.serial, c.status) for c in due] == [
        (soon.serial, "expired"),
        (later.serial, "active"),
    ]
    renewed = pki.renew(later.serial)
    assert [c.serial for c in pki.due_for_renewal(timedelta(days=14))] == [soon.serial]
    assert renewed.serial in {c.serial for c in pki.list()}


def test_list_shows_live_certificates_and_hides_revoked_unless_asked(
    pki: Pki, clock: ManualClock
) -> None:
    """Revoked ones only with include_revoked; expired and renewed ones drop out."""
    kept = pki.issue_client("kept")
    gone = pki.issue_client("gone")
    old = pki.issue_client("old", timedelta(hours=1))
    pki.revoke(gone.serial, "affiliationChanged")
    new = pki.renew(old.serial, timedelta(days=1))
    clock.now += timedelta(hours=2)
    assert {c.serial for c in pki.list()} == {kept.serial, new.serial}
    listed = {c.serial: c.status for c in pki.list(include_revoked=True)}
    assert listed == {kept.serial: "active", new.serial: "active", gone.serial: "revoked"}


def test_private_keys_are_never_stored(pki: Pki, deployment: Deployment) -> None:
    """No PEM key and no key bytes in any PKI table; the CAs' keys are sealed blobs."""
    issued = [pki.issue_client("a"), pki.issue_server(["b.test"])]
    pki.renew(issued[0].serial)
    with deployment.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM pki_certificates")).all()
        authorities = connection.execute(sa.text("SELECT * FROM pki_authorities")).all()
    dump = repr([tuple(row) for row in rows]).encode()
    assert len(rows) == 3
    assert b"PRIVATE KEY" not in dump
    for item in issued:
        body = b"".join(item.private_key_pem.splitlines()[1:-1])
        assert body not in dump
    for row in authorities:
        assert row.private_key
        assert b"PRIVATE KEY" not in bytes(row.private_key)


def test_local_ca_issues_from_the_same_pki_as_ephemeral(pki: Pki, deployment: Deployment) -> None:
    """The old face hands out leaf + intermediate; its certificates are listed, never due."""
    ca = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id)
    issued = ca.issue_client("spiffe://example.test/client/gw", timedelta(days=1))
    leaf, intermediate = x509.load_pem_x509_certificates(issued.certificate_pem)
    assert ca.certificate == pki.root_certificate()
    assert intermediate == _intermediate(pki)
    listed = pki.list()
    assert [(c.name, c.ephemeral) for c in listed] == [("gw", True)]
    assert listed[0].serial == format(leaf.serial_number, "x")
    assert pki.due_for_renewal(timedelta(days=30)) == []
