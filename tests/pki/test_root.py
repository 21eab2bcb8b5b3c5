"""The root CA: kept offline and brought back, and adopted from a single-CA deployment."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import (
    certificate_pem,
    issue_server_certificate,
    load_private_key_pem,
    private_key_pem,
    self_signed_ca,
)
from interlock.errors import InvalidRequestError
from interlock.pki import Pki
from interlock.pki.authorities import RootKeyOfflineError
from interlock.store import Deployment
from interlock.store.sealed import rewrap_all
from interlock.tables import sealed_columns
from interlock.testing.clock import ManualClock


@pytest.fixture
def pki(deployment: Deployment, clock: ManualClock) -> Pki:
    """The PKI of a fresh deployment on each store backend, on a hand-moved clock."""
    return Pki(
        deployment.engine, deployment.keyring, deployment.deployment_id, "example.test", clock
    )


def _verify_server(pki: Pki, clock: ManualClock, pem: bytes, host: str) -> None:
    leaf, *intermediates = x509.load_pem_x509_certificates(pem)
    policy = PolicyBuilder().store(Store([pki.root_certificate()])).time(clock.now)
    policy.build_server_verifier(x509.DNSName(host)).verify(leaf, intermediates)


def _stored_root_key(deployment: Deployment) -> bytes | None:
    query = sa.text("SELECT private_key FROM pki_authorities WHERE name = 'root'")
    with deployment.engine.connect() as connection:
        value = connection.execute(query).scalar_one()
    return None if value is None else bytes(value)


def test_root_key_goes_offline_and_issuing_goes_on(
    pki: Pki, deployment: Deployment, clock: ManualClock, tmp_path: Path
) -> None:
    """Exported 0600 and removed: leaves and CRLs still come from the intermediate."""
    pki.ensure()
    path = tmp_path / "root.key"
    pki.export_root(path)
    pki.remove_root_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    exported = load_private_key_pem(path.read_bytes())
    assert exported.public_key() == pki.root_certificate().public_key()
    assert _stored_root_key(deployment) is None
    issued = pki.issue_server(["api.test"])
    _verify_server(pki, clock, issued.certificate_pem, "api.test")
    pki.revoke(issued.serial, "superseded")
    assert len(x509.load_pem_x509_crl(pki.crl_pem())) == 1


def test_operations_signing_with_the_root_wait_for_its_import(
    pki: Pki, clock: ManualClock, tmp_path: Path
) -> None:
    """Re-signing the intermediate or exporting again needs the key back; a wrong key is refused."""
    pki.ensure()
    path = tmp_path / "root.key"
    pki.export_root(path)
    pki.remove_root_key()
    with pytest.raises(RootKeyOfflineError, match="import-root"):
        pki.renew_issuing()
    with pytest.raises(RootKeyOfflineError):
        pki.export_root(tmp_path / "again.key")
    leaf_key = tmp_path / "leaf.key"
    write_private_file(leaf_key, pki.issue_client("a").private_key_pem)
    with pytest.raises(InvalidRequestError, match="does not hold the key of this"):
        pki.import_root_key(leaf_key)
    (tmp_path / "junk.key").write_bytes(b"not a key")
    with pytest.raises(InvalidRequestError, match="PEM ECDSA P-256"):
        pki.import_root_key(tmp_path / "junk.key")
    before = pki.chain_pem()
    pki.import_root_key(path)
    pki.renew_issuing()
    assert pki.chain_pem() != before
    _verify_server(pki, clock, pki.issue_server(["new.test"]).certificate_pem, "new.test")


def test_export_never_overwrites_a_file(pki: Pki, tmp_path: Path) -> None:
    """An existing file at the target stays as it was."""
    path = tmp_path / "root.key"
    path.write_bytes(b"keep me")
    with pytest.raises(InvalidRequestError, match="already exists"):
        pki.export_root(path)
    assert path.read_bytes() == b"keep me"


def test_a_missing_intermediate_cannot_be_created_while_the_root_is_offline(
    pki: Pki, deployment: Deployment, tmp_path: Path
) -> None:
    """ensure() says how to fix it instead of failing obscurely."""
    pki.ensure()
    pki.export_root(tmp_path / "root.key")
    pki.remove_root_key()
    with deployment.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM pki_authorities WHERE name = 'issuing'"))
    with pytest.raises(RootKeyOfflineError):
        pki.ensure()


def test_keyring_rotation_rewraps_around_an_offline_root(
    pki: Pki, deployment: Deployment, tmp_path: Path
) -> None:
    """The NULL root key is skipped; the intermediate's key is re-wrapped and still opens."""
    pki.ensure()
    pki.export_root(tmp_path / "root.key")
    pki.remove_root_key()
    deployment.keyring.rotate()
    rewrap_all(deployment.engine, deployment.keyring, sealed_columns())
    assert pki.issue_client("a").serial


def test_a_single_legacy_ca_is_adopted_as_the_root(
    pki: Pki, deployment: Deployment, clock: ManualClock
) -> None:
    """Same name and key, now path length 1; what it signed before still verifies."""
    old_ca, old_key = self_signed_ca(
        "Interlock local CA 1234abcd", timedelta(days=3650), now=clock.now
    )
    sealed = deployment.keyring.seal(private_key_pem(old_key), b"interlock:pki:authority:internal")
    with deployment.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO pki_authorities (name, certificate_pem, private_key, created_at) "
                "VALUES ('internal', :pem, :key, :at)"
            ),
            {"pem": certificate_pem(old_ca).decode(), "key": sealed, "at": datetime.now(UTC)},
        )
    old_leaf, _ = issue_server_certificate(
        old_ca, old_key, ["old.test"], timedelta(days=30), now=clock.now
    )
    pki.ensure()
    root = pki.root_certificate()
    assert root.subject == old_ca.subject
    assert root.public_key() == old_ca.public_key()
    assert root.not_valid_after_utc == old_ca.not_valid_after_utc
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.path_length == 1
    with deployment.engine.connect() as connection:
        names = connection.execute(sa.text("SELECT name FROM pki_authorities")).scalars().all()
    assert sorted(names) == ["issuing", "root"]
    _verify_server(pki, clock, certificate_pem(old_leaf), "old.test")
    _verify_server(pki, clock, pki.issue_server(["new.test"]).certificate_pem, "new.test")


def test_a_replaced_intermediate_signs_crls_until_its_certificates_expire(
    pki: Pki, clock: ManualClock, deployment: Deployment
) -> None:
    """renew-intermediate retires the old CA: its list goes on, its key goes with its last leaf."""
    old = pki.issue_client("a", timedelta(days=2))
    old_issuer = x509.load_pem_x509_certificates(old.certificate_pem)[1]
    pki.renew_issuing()
    clock.now += timedelta(seconds=1)
    new = pki.issue_client("b", timedelta(days=30))
    pki.revoke(old.serial, "superseded")
    pki.revoke(new.serial, "superseded")
    issuers = pki.crl_issuers()
    assert issuers[1:] == (old_issuer.serial_number,)
    current, retired = (x509.load_pem_x509_crl(pem) for pem in pki.crls())
    assert retired.is_signature_valid(old_issuer.public_key())  # type: ignore[arg-type]
    assert [entry.serial_number for entry in retired] == [int(old.serial, 16)]
    assert [entry.serial_number for entry in current] == [int(new.serial, 16)]
    clock.now += timedelta(days=2, minutes=1)  # the old CA's last certificate has expired
    assert pki.crl_issuers() == issuers[:1]
    with deployment.engine.connect() as connection:
        names = connection.execute(sa.text("SELECT name FROM pki_authorities")).scalars().all()
    assert sorted(names) == ["issuing", "root"]  # the retired key is gone
