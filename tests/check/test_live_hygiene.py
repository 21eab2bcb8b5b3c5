"""``--live`` hygiene: ``interlock scan`` over a source tree, overdue secrets, certificates due."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.check.live_hygiene import certificate_findings, overdue_findings, scan_findings
from interlock.config.settings import Settings
from interlock.credentials.checks import with_github_checksum
from interlock.pki.authority import Pki
from interlock.secrets.vault import Vault
from interlock.store import Deployment, initialise
from interlock.testing.clock import ManualClock
from tests.check.live_helpers import manifest_with

_ADMIN = Operator("admin:test")


def _fake_github_token() -> str:
    """A token of GitHub's shape and checksum, made now (no credential is committed)."""
    alphabet = string.ascii_letters + string.digits
    return with_github_checksum("gh" + "p_", "".join(secrets.choice(alphabet) for _ in range(30)))


def test_a_hardcoded_credential_fails_secrets_manager_at_its_line(tmp_path: Path) -> None:
    """The scanner's hit becomes a located, masked finding."""
    token = _fake_github_token()
    (tmp_path / "sync.py").write_text(f'import os\n\nUPSTREAM_TOKEN = "{token}"\n')
    found = scan_findings(tmp_path)
    failed = [f for f in found if f.status == "fail"]
    assert len(failed) == 1
    [finding] = failed
    assert finding.item == "secrets_manager"
    assert finding.live
    assert finding.location is not None
    assert finding.location.line == 3
    assert finding.location.file == (tmp_path / "sync.py").as_posix()
    assert token not in repr(finding)
    assert "github-token" in finding.reason


def test_a_tls_switch_fails_certificates_validated(tmp_path: Path) -> None:
    """``verify=False`` in the code is evidence against certificate validation."""
    (tmp_path / "client.py").write_text(
        "import requests\n\n\ndef get(url):\n    return requests.get(url, verify=False)\n"
    )
    items = {f.item: f.status for f in scan_findings(tmp_path)}
    assert items["certificates_validated"] == "fail"
    assert items["secrets_manager"] == "pass"


def test_unsafe_parsing_fails_input_validation_and_sslmode_off_fails_tls(tmp_path: Path) -> None:
    """The scanner's other switches land on their items: unsafe YAML, and libpq without TLS."""
    (tmp_path / "loader.py").write_text(
        "import yaml\n\n\ndef read(text):\n    return yaml.load(text)\n"
    )
    # Spelt in two pieces: the repository's own scan reads this file too.
    (tmp_path / "settings.env").write_text(
        "DATABASE_URL=postgresql://app@db.internal/app?sslmode=" + "disable\n"
    )
    found = [f for f in scan_findings(tmp_path) if f.status == "fail"]
    items = {f.item: f for f in found}
    assert set(items) == {"input_validation", "tls_required"}, found
    assert items["input_validation"].location is not None
    assert items["input_validation"].location.line == 5
    assert items["tls_required"].reason.startswith("settings.env:1:")
    assert all(f.live for f in found)


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    """Nothing found: one passing finding, the scan's counts as evidence."""
    (tmp_path / "app.py").write_text('TOKEN_REF = "secret://erp/api-key"\n')
    [finding] = scan_findings(tmp_path)
    assert finding.status == "pass"
    assert "1 files, 0 findings" in finding.evidence[0]


def test_a_missing_source_is_a_failed_finding(tmp_path: Path) -> None:
    """A path that does not exist is reported, not raised."""
    [finding] = scan_findings(tmp_path / "absent")
    assert finding.status == "fail"
    assert "does not exist" in finding.reason


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Deployment]:
    """A deployment on SQLite."""
    deployment = initialise(Settings(data_dir=tmp_path / "data"))
    yield deployment
    deployment.close()


def test_an_overdue_secret_fails_for_the_integrations_of_its_system(local: Deployment) -> None:
    """An API key past its 100 days fails for the integration whose upstream uses it."""
    vault = Vault(local.engine, local.keyring, audit=MemorySink())
    vault.write("erp/api-key", b"placeholder-value", actor=_ADMIN, kind="api_key")
    manifest = manifest_with(
        {
            "erp": {"url": "https://localhost:1", "credentials": "secret://erp/api-key"},
            "crm": {"url": "https://localhost:2"},
        }
    )
    now = datetime.now(UTC)
    assert overdue_findings(manifest, vault, now)[0].status == "pass"
    later = overdue_findings(manifest, vault, now + timedelta(days=101))
    assert [(f.integration, f.status) for f in later] == [("to-erp", "fail")]
    assert "secret://erp/api-key is overdue" in later[0].reason
    assert later[0].fix == "interlock secrets rotate erp/api-key"


def test_a_client_certificate_due_fails_for_its_integrations(local: Deployment) -> None:
    """A client certificate with ten days left fails for the integrations its client calls."""
    clock = ManualClock()
    pki = Pki(local.engine, local.keyring, local.deployment_id, "test.example", now=clock)
    issued = pki.issue_client("sync", timedelta(days=30))
    manifest = manifest_with({"erp": {"url": "https://localhost:1"}})
    assert certificate_findings(manifest, pki, clock())[0].status == "pass"
    clock.advance(timedelta(days=20))
    [finding] = certificate_findings(manifest, pki, clock())
    assert finding.status == "fail"
    assert finding.integration == "to-erp"
    assert issued.serial in finding.reason
    assert "expires in" in finding.reason
