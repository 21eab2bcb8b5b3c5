"""``interlock check --live`` against a real running gateway, its upstreams and its deployment."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from interlock.audit.sink import MemorySink
from interlock.check.live import live_findings
from interlock.check.results import Finding
from interlock.config.settings import Settings
from interlock.pki import LOCAL_CA_NAME
from interlock.secrets.vault import Vault
from interlock.store import Deployment
from interlock.tables import sealed_columns
from interlock.testing.gateway import Env, running_gateway
from tests.check.live_helpers import trust_of

pytestmark = pytest.mark.processes


class _Default:
    """The part the harness gives (distinct from None: the part is absent)."""


DEFAULT = _Default()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """The test gateway: the sample ERP (local CA) and a rogue upstream (a CA nobody trusts)."""
    with running_gateway(tmp_path_factory.mktemp("live")) as running:
        yield running


def _live(
    env: Env,
    *,
    settings: Settings | None = None,
    deployment: Deployment | _Default | None = DEFAULT,
    vault: Vault | _Default | None = DEFAULT,
    gateway_url: str | _Default | None = DEFAULT,
    ca_file: Path | _Default | None = DEFAULT,
    source: Path | None = None,
) -> list[Finding]:
    """``live_findings`` as the CLI calls it on the gateway's host; each part may be replaced."""
    opened = env.deployment
    return live_findings(
        env.gateway.gateway.manifest,
        settings or opened.settings,
        trust=trust_of({f"pki:{LOCAL_CA_NAME}": env.ca_file}),
        deployment=opened if isinstance(deployment, _Default) else deployment,
        vault=Vault(opened.engine, opened.keyring, audit=MemorySink())
        if isinstance(vault, _Default)
        else vault,
        sealed_columns=sealed_columns(),
        gateway_url=f"https://127.0.0.1:{env.port}"
        if isinstance(gateway_url, _Default)
        else gateway_url,
        ca_file=env.ca_file if isinstance(ca_file, _Default) else ca_file,
        source=source,
        now=datetime.now(UTC),
    )


def _one(found: list[Finding], item: str, integration: str | None = None) -> Finding:
    [finding] = [f for f in found if f.item == item and f.integration == integration]
    return finding


def test_the_running_gateway_answers_malformed_requests_with_sanitised_problems(
    env: Env,
) -> None:
    """Unknown route, injected parameter, broken JSON: all RFC 9457, nothing internal."""
    finding = _one(_live(env), "sanitised_errors")
    assert finding.status == "pass", finding.reason
    assert len(finding.evidence) == 3


def test_upstream_tls_is_verified_and_the_rogue_upstream_fails(env: Env) -> None:
    """The ERP's certificate is from the local CA; the rogue's from a CA nobody trusts."""
    found = _live(env)
    # order-sync's routes reach both upstreams; cert-sync's only the ERP.
    assert _one(found, "tls_required", "cert-sync").status == "pass"
    erp = [f for f in found if f.item == "certificates_validated" and "system erp" in f.reason]
    assert erp
    assert {f.integration for f in erp} >= {"order-sync", "cert-sync"}
    rogue = [f for f in found if f.item == "certificates_validated" and "system rogue" in f.reason]
    assert [f.status for f in rogue] == ["fail"]
    assert "certificate refused" in rogue[0].reason


def test_the_deployment_evidence_is_read(env: Env) -> None:
    """Audit log verified and fresh; stored values sealed; nothing overdue."""
    found = _live(env)
    assert _one(found, "audit_trail").status == "pass", _one(found, "audit_trail").reason
    assert _one(found, "encryption_at_rest").status == "pass"
    kept = [f for f in found if f.item == "retention"]
    assert {f.integration for f in kept} == set(env.gateway.gateway.manifest.integrations)
    assert {f.status for f in kept} == {"pass"}, [f.reason for f in kept]
    overdue = [f for f in found if f.item == "secrets_manager" and "overdue" in f.reason]
    assert [f.status for f in overdue] == ["pass"]
    assert all(f.live for f in found)


def test_parts_not_given_need_evidence_rather_than_passing(env: Env) -> None:
    """No gateway URL, no deployment, no vault, no source: each says what to pass."""
    found = _live(env, gateway_url=None, deployment=None, vault=None)
    for item in ("sanitised_errors", "audit_trail", "encryption_at_rest", "retention"):
        assert _one(found, item).status == "needs_evidence"
    needs = [f for f in found if f.item == "secrets_manager"]
    assert {f.status for f in needs} == {"needs_evidence"}
    assert all(f.fix for f in needs)


def test_the_gateway_ca_defaults_to_the_data_directory(env: Env, tmp_path: Path) -> None:
    """Without --ca the data directory's ca.pem is trusted; without one, the system store."""
    settings = env.deployment.settings.model_copy(update={"data_dir": tmp_path})

    def probe() -> Finding:
        found = _live(env, settings=settings, deployment=None, vault=None, ca_file=None)
        return _one(found, "sanitised_errors")

    untrusted = probe()
    assert untrusted.status == "fail"
    assert "could not be probed" in untrusted.reason
    shutil.copyfile(env.ca_file, tmp_path / "ca.pem")
    trusted = probe()
    assert trusted.status == "pass", trusted.reason
