"""A file integration in the Art. 30 register: the trading partner and its agreement."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs

from interlock.config.loader import load_manifest
from interlock.privacy.ropa import build_register
from interlock.privacy.ropa_render import json_schema, to_json
from tests.config.test_files_manifest import FILES


def test_the_partner_and_its_agreement_are_recipients(tmp_path: Path) -> None:
    """The partner is listed with its location and agreement; the quarantine is a measure."""
    path = tmp_path / "interlock.yaml"
    path.write_text(FILES)
    now = datetime(2026, 12, 5, tzinfo=UTC)
    document: dict[str, Any] = to_json(
        build_register(load_manifest(path), source=str(path), kek_backend="file", now=now)
    )
    jsonschema_rs.validator_for(json_schema()).validate(document)
    (record,) = document["records"]
    (partner,) = [r for r in record["recipients"] if r["kind"] == "partner"]
    assert partner["name"] == "acme (partner agreement TPA-2025-017 (signed 2025-03-01))"
    assert partner["location"] == "NL"
    texts = [m["description"] for m in record["measures"]]
    assert any("quarantine" in t for t in texts)
    assert any("SFTP" in t and "pinned" in t for t in texts)


def test_an_as2_partner_is_a_recipient_with_its_agreement(tmp_path: Path) -> None:
    """Over AS2 the partner is still listed with its agreement; the AS2 protection is a measure."""
    text = FILES.replace(
        "    drop:\n",
        "    as2:\n      as2_id: ACME\n      our_id: EXAMPLE\n"
        "      url: https://as2.acme.example/as2\n      certificate: file:/etc/acme.pem\n"
        "      our_key: secret://acme/as2-key\n      our_certificate: file:/etc/ours.pem\n"
        "    drop:\n",
    ).replace("transport: sftp", "transport: as2")
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    now = datetime(2026, 12, 5, tzinfo=UTC)
    document: dict[str, Any] = to_json(
        build_register(load_manifest(path), source=str(path), kek_backend="file", now=now)
    )
    (record,) = document["records"]
    (partner,) = [r for r in record["recipients"] if r["kind"] == "partner"]
    assert partner["name"] == "acme (partner agreement TPA-2025-017 (signed 2025-03-01))"
    texts = [m["description"] for m in record["measures"]]
    assert any("AS2" in t and "MDN" in t for t in texts)
