"""An event-streaming integration in the Art. 30 register: broker, subjects, per-consumer cuts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs

from interlock.config.loader import load_manifest
from interlock.privacy.ropa import build_register
from interlock.privacy.ropa_render import json_schema, to_json
from tests.config.test_events_manifest import EVENTS, SEALED

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def _record(tmp_path: Path, text: str = EVENTS) -> dict[str, Any]:
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    register = build_register(load_manifest(path), source=str(path), kek_backend="file", now=NOW)
    document: dict[str, Any] = to_json(register)
    jsonschema_rs.validator_for(json_schema()).validate(document)
    record: dict[str, Any] = document["records"][0]
    return record


def test_the_broker_the_subjects_and_each_consumer_cut_are_listed(tmp_path: Path) -> None:
    """What each consumer receives, of which subject, is in the register, with its categories."""
    record = _record(tmp_path)
    assert [r["name"] for r in record["recipients"] if r["kind"] == "broker"] == ["stream"]
    texts = [m["description"] for m in record["measures"]]
    assert any(t.startswith("order.created events validated") and "user.contact.email" in t
               for t in texts)  # fmt: skip
    assert (
        "crm-events receives order.created where region = EU on its own stream with id, "
        "customer.email" in texts
    )
    assert "analytics receives order.cancelled on its own stream with every field" in texts
    # No routes: the register does not claim route-level authorisation for it.
    assert not any("may call this integration's routes" in t for t in texts)


def test_sealed_events_list_their_payload_encryption_and_plain_ones_do_not(
    tmp_path: Path,
) -> None:
    """encrypt: payload is a measure of its own, as for messaging; plain events claim none."""
    plain = _record(tmp_path)
    assert not [m for m in plain["measures"] if m["kind"] == "payload_encryption"]
    sealed = _record(tmp_path, SEALED)
    (measure,) = [m for m in sealed["measures"] if m["kind"] == "payload_encryption"]
    assert measure["description"] == (
        "every consumer's copy signed by erp-events (Ed25519) and encrypted to that "
        "consumer's key alone (RSA-OAEP-256, A256GCM), subject and schema version bound to "
        "it; one key agreement per PT5M window key; keys rotated every P7D"
    )
