"""The checklist of a messaging integration: answered from its messaging section and broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.check.run import run_check
from tests.check.conftest import by_item
from tests.config.test_messaging_manifest import MESSAGING

FLOW = "order-events"


def _statuses(tmp_path: Path, text: str = MESSAGING) -> dict[str, str]:
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    return {item: f.status for item, f in by_item(run_check(path), FLOW).items()}


def test_a_complete_messaging_integration_passes_what_its_section_shows(tmp_path: Path) -> None:
    """Everything passes but what no manifest can show: the KEK backend and producer throttling."""
    statuses = _statuses(tmp_path)
    assert {i for i, s in statuses.items() if s != "pass"} == {
        "encryption_at_rest",
        "rate_limiting",
    }
    assert {i for i in statuses if i.startswith("type.")} == {
        "type.messaging.broker_tls",
        "type.messaging.dlq_access",
        "type.messaging.message_expiry",
    }


@pytest.mark.parametrize(
    ("old", "new", "item", "status"),
    [
        # A broker nobody authenticates to: anyone reaching it publishes and reads.
        (
            '    credentials: "secret://bus/password"\n    client_cert: "pki:auto"\n',
            "",
            "authentication",
            "fail",
        ),
        (
            '    credentials: "secret://bus/password"\n    client_cert: "pki:auto"\n',
            "",
            "type.messaging.broker_tls",
            "fail",
        ),
        ("      fields: [id, customer.email]\n", "", "minimisation", "fail"),
        (
            "      schema:\n        type: object\n"
            "        properties: {id: {type: string}, customer: {type: object}}\n"
            "        required: [id]\n        additionalProperties: false\n",
            "",
            "input_validation",
            "fail",
        ),
        (
            "  alice: {roles: [dlq-handler]}\n  ops.bob@corp: {roles: [dlq-handler]}\n",
            "",
            "type.messaging.dlq_access",
            "needs_evidence",
        ),
        ("retention: P7D}", "retention: P60D}", "type.messaging.message_expiry", "fail"),
        ("retention: P7D}", "retention: P60D}", "retention", "fail"),
        # Messages themselves outliving a retention shorter than their ttl (PT10M).
        ("    retention: P30D\n", "    retention: PT5M\n", "retention", "fail"),
    ],
)
def test_a_missing_control_is_reported(
    tmp_path: Path, old: str, new: str, item: str, status: str
) -> None:
    """Each control the section lacks turns its item from pass to fail or needs evidence."""
    assert old in MESSAGING
    assert _statuses(tmp_path)[item] == "pass"
    assert _statuses(tmp_path, MESSAGING.replace(old, new, 1))[item] == status


def test_dead_letters_kept_past_the_retention_fail_it_at_their_line(tmp_path: Path) -> None:
    """The 13-item ``retention``: the queue named with its period, located, and the fix."""
    path = tmp_path / "interlock.yaml"
    path.write_text(MESSAGING.replace("retention: P7D}", "retention: P60D}", 1))
    finding = by_item(run_check(path), FLOW)["retention"]
    assert finding.status == "fail"
    assert finding.reason == (
        "the integration's queues keep its data longer than its retention (30 days): "
        "messaging.dead_letter.retention (60 days)"
    )
    assert "messaging.ttl: PT10M" in finding.evidence
    line = MESSAGING.splitlines().index("      dead_letter: {role: dlq-handler, retention: P7D}")
    assert finding.location is not None
    assert finding.location.line == line + 1
    assert finding.fix is not None
    assert finding.fix.startswith("lower messaging.dead_letter.retention to at most 30 days")
