"""The local CA face: the root is created once, keys sealed, issued chains verify."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509

from interlock.config.settings import Settings
from interlock.crypto.pkix import BACKDATE
from interlock.pki import ensure_local_ca
from interlock.store import initialise
from interlock.testing.clock import ManualClock


def test_local_ca_is_created_once_and_its_key_is_sealed(tmp_path: Path) -> None:
    """A second call returns the same root (path length 1); no stored key is PEM."""
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path}/s.db")
    )
    first = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id)
    second = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id)
    assert first.certificate == second.certificate
    with deployment.engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT private_key FROM pki_authorities")).all()
    assert len(stored) == 2  # the root and the issuing CA
    assert all(row.private_key and b"PRIVATE KEY" not in row.private_key for row in stored)
    constraints = first.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is True
    assert constraints.value.path_length == 1
    deployment.close()


def test_issued_server_certificate_verifies_against_the_ca(tmp_path: Path) -> None:
    """The chain (leaf, intermediate) leads to the root and carries the requested names."""
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path}/s.db")
    )
    ca = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id)
    issued = ca.issue_server(["localhost", "127.0.0.1"])
    certificate, intermediate = x509.load_pem_x509_certificates(issued.certificate_pem)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    certificate.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(ca.certificate)
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem)
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    assert context.get_ca_certs()[0]["subject"]
    deployment.close()


def test_the_local_ca_dates_what_it_issues_by_the_injected_clock(tmp_path: Path) -> None:
    """Root, intermediate and leaves start (back-dated) and end relative to ``now``, not today.

    By the real clock a certificate issued "now" would expire years before 2040.
    """
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path}/s.db")
    )
    clock = ManualClock(datetime(2040, 1, 1, tzinfo=UTC))
    ca = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id, now=clock)
    assert ca.certificate.not_valid_before_utc == clock.now - BACKDATE
    clock.advance(timedelta(days=3))
    issued = ca.issue_server(["localhost"])
    assert issued.not_after == clock.now + timedelta(days=30)
    leaf, intermediate = x509.load_pem_x509_certificates(issued.certificate_pem)
    assert leaf.not_valid_before_utc == clock.now - BACKDATE
    assert intermediate.not_valid_before_utc == datetime(2040, 1, 1, tzinfo=UTC) - BACKDATE
    deployment.close()
