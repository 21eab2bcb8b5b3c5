"""The checklist of an event-streaming integration: answered from its events section."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.check.results import Finding
from interlock.check.run import run_check
from tests.check.conftest import by_item
from tests.config.test_events_manifest import EVENTS, SEALED

FLOW = "order-stream"


def _findings(tmp_path: Path, text: str) -> dict[str, Finding]:
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    return by_item(run_check(path), FLOW)


def _statuses(tmp_path: Path, text: str = EVENTS) -> dict[str, str]:
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    return {item: f.status for item, f in by_item(run_check(path), FLOW).items()}


def test_a_complete_event_integration_passes_what_its_section_shows(tmp_path: Path) -> None:
    """All but the KEK backend and producer throttling; the three type mitigations pass."""
    statuses = _statuses(tmp_path)
    assert {i for i, s in statuses.items() if s != "pass"} == {
        "encryption_at_rest",
        "rate_limiting",
    }
    assert {i for i in statuses if i.startswith("type.")} == {
        "type.event_streaming.schema_validation",
        "type.event_streaming.event_filtering",
        "type.event_streaming.topic_acl",
    }


@pytest.mark.parametrize(
    ("old", "new", "items", "status"),
    [
        # A consumer receiving a personal-data subject uncut.
        (
            "order.created: {fields: [id, customer.email], filter: {region: EU}}",
            "order.created: {filter: {region: EU}}",
            ("minimisation", "type.event_streaming.event_filtering"),
            "fail",
        ),
        (
            "order.cancelled: {compatibility: FULL_TRANSITIVE}",
            "order.cancelled: {compatibility: NONE}",
            ("type.event_streaming.schema_validation",),
            "fail",
        ),
        (
            "dead_letter: {role: dlq-handler}",
            "dead_letter: {role: dlq-handler, retention: P90D}",
            ("type.event_streaming.topic_acl", "retention"),
            "fail",
        ),
        (
            ', client_cert: "pki:auto"}',
            "}",
            ("authentication", "secrets_manager"),
            None,
        ),
    ],
)
def test_a_missing_control_is_reported(
    tmp_path: Path, old: str, new: str, items: tuple[str, ...], status: str | None
) -> None:
    """Each control the section lacks turns its items from pass to fail (or needs evidence)."""
    assert old in EVENTS
    before = _statuses(tmp_path)
    after = _statuses(tmp_path, EVENTS.replace(old, new, 1))
    for item in items:
        assert before[item] == "pass"
        assert after[item] != "pass"
        if status is not None:
            assert after[item] == status


def test_tls_required_says_whether_events_are_payload_encrypted(tmp_path: Path) -> None:
    """Plain events: TLS only, said so; sealed: the envelope, its algorithms and keys named."""
    plain = _findings(tmp_path, EVENTS)
    assert "events are not payload-encrypted" in plain["tls_required"].reason
    sealed = _findings(tmp_path, SEALED)
    tls = sealed["tls_required"]
    assert tls.status == "pass"
    assert "events are payload-encrypted" in tls.reason
    assert "Ed25519" in tls.reason
    assert "RSA-OAEP-256" in tls.reason
    assert "producer erp-events signs every copy (Ed25519)" in sealed["authentication"].evidence
    assert any("one per consumer" in e for e in sealed["least_privilege"].evidence)
    assert any("event keys" in e for e in sealed["secrets_manager"].evidence)
    statuses = {item: finding.status for item, finding in sealed.items()}
    assert statuses == {item: finding.status for item, finding in plain.items()}
