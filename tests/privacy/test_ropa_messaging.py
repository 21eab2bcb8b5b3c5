"""A messaging integration in the Art. 30 register: its broker and the measures on its messages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs

from interlock.config.loader import load_manifest
from interlock.privacy.ropa import build_register
from interlock.privacy.ropa_render import json_schema, to_json, to_markdown
from tests.config.test_messaging_manifest import MESSAGING

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def _register(tmp_path: Path, text: str = MESSAGING) -> dict[str, Any]:
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    return to_json(
        build_register(load_manifest(path), source=str(path), kek_backend="file", now=NOW)
    )


def test_the_broker_is_a_recipient_with_its_location(tmp_path: Path) -> None:
    """Messages rest on the broker: the register lists it, where it is and who owns it."""
    record = _register(tmp_path)["records"][0]
    brokers = [r for r in record["recipients"] if r["kind"] == "broker"]
    assert brokers == [
        {
            "name": "bus",
            "kind": "broker",
            "configured_at": "integrations.order-events.messaging.broker",
            "location": "DE",
            "owner": None,
        }
    ]


def test_the_measures_are_those_the_messaging_section_configures(tmp_path: Path) -> None:
    """Payload encryption, who may read, schema, minimisation, expiry and dead letters."""
    record = _register(tmp_path)["records"][0]
    by_kind: dict[str, list[str]] = {}
    for measure in record["measures"]:
        by_kind.setdefault(measure["kind"], []).append(measure["description"])
    assert any("broker bus" in text and "client certificate" in text for text in by_kind["tls"])
    (encryption,) = by_kind["payload_encryption"]
    assert "customer.email encrypted to crm-consumer" in encryption
    assert "signed by erp-publisher (ES256)" in encryption
    assert "one key agreement per PT5M window key" in encryption
    assert any("only crm-consumer hold keys" in text for text in by_kind["authorisation"])
    assert by_kind["minimisation"] == [
        "consumers receive only id, customer.email; other fields removed"
    ]
    assert "expire after PT10M" in by_kind["replay_protection"][0]
    assert "role dlq-handler" in by_kind["dead_letters"][0]


def test_the_register_still_matches_its_schema(tmp_path: Path) -> None:
    """The new recipient and measure kinds are in the published JSON Schema."""
    jsonschema_rs.validator_for(json_schema()).validate(_register(tmp_path))


def test_markdown_names_the_broker(tmp_path: Path) -> None:
    """The human register says what the broker is."""
    path = tmp_path / "interlock.yaml"
    path.write_text(MESSAGING)
    register = build_register(load_manifest(path), source=str(path), kek_backend="file", now=NOW)
    assert "message broker bus, located in DE" in to_markdown(register)
