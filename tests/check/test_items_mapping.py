"""The checklist's OWASP mappings: well-formed ids, in the chapters the items are about."""

from __future__ import annotations

import re
from pathlib import Path

from interlock.check.catalogue import item
from interlock.check.items import ITEMS

# OWASP ASVS 5.0.0: chapters V1-V17, requirements V<chapter>.<section>.<requirement>.
ASVS_ID = re.compile(r"V(1[0-7]|[1-9])\.[1-9]\d?\.[1-9]\d?")
API_TOP10_ID = re.compile(r"API([1-9]|10):2023")


def test_every_item_maps_to_asvs_5_requirements() -> None:
    """Each item names at least one ASVS 5.0 requirement, each id well-formed, none twice."""
    for checked in ITEMS:
        assert checked.asvs, checked.id
        assert len(set(checked.asvs)) == len(checked.asvs), checked.id
        for requirement in checked.asvs:
            assert ASVS_ID.fullmatch(requirement), (checked.id, requirement)


def test_api_top10_ids_are_2023_entries() -> None:
    """Top 10 ids are API1:2023 ... API10:2023; items the list does not cover map to none."""
    for checked in ITEMS:
        for entry in checked.api_top10:
            assert API_TOP10_ID.fullmatch(entry), (checked.id, entry)
    uncovered = {i.id for i in ITEMS if not i.api_top10}
    assert uncovered == {"encryption_at_rest", "audit_trail", "retention"}


def test_items_map_into_the_chapters_they_are_about() -> None:
    """Spot checks against ASVS 5.0's chapter numbering (4.0's differs: V9 was TLS there)."""
    chapters = {
        "tls_required": "V12.",  # Secure Communication
        "certificates_validated": "V12.",
        "secrets_manager": "V13.3.",  # Configuration: Secret Management
        "audit_trail": "V16.",  # Security Logging and Error Handling
        "input_validation": "V2.",  # Validation and Business Logic
    }
    for item_id, prefix in chapters.items():
        assert all(r.startswith(prefix) for r in item(item_id).asvs), item_id
    assert "V16.5.1" in item("sanitised_errors").asvs  # generic error messages
    assert item("authentication").api_top10 == ("API2:2023",)
    assert item("minimisation").api_top10 == ("API3:2023",)


def test_docs_list_every_item_with_its_mappings() -> None:
    """docs/check.md: a section per item (its SARIF help anchor) and a table row with its ids."""
    text = (Path(__file__).parents[2] / "docs" / "check.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip(" `"): line for line in text.splitlines() if line.startswith("| `")
    }
    for checked in ITEMS:
        assert f"\n### `{checked.id}`\n" in text, checked.id
        row = rows[checked.id]
        for requirement in checked.asvs:
            assert f"{requirement} (L" in row, (checked.id, requirement)
        for entry in checked.api_top10:
            assert entry.split(":")[0] in row, (checked.id, entry)
