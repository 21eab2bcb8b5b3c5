"""Fixture manifests for interlock check: one valid base, and a variant per failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from interlock.check.results import Finding, Scorecard
from interlock.check.run import run_check

BASE = """\
version: 1
organisation:
  controller: {name: Example GmbH, contact: privacy@example.de, country: DE}
systems:
  erp:
    url: https://erp.example.de
    location: DE
    ca: pki:internal
    credentials: secret://erp/api-key
  crm:
    url: https://crm.example.de
    location: DE
    credentials: secret://crm/token
roles:
  reader:
    scopes: [orders.read]
  writer:
    scopes: [orders.write]
clients:
  sync:
    auth: [oauth2, mtls]
    roles: [reader, writer]
integrations:
  sync:
    source: erp
    target: crm
    client: sync
    purpose: Sync orders to the CRM
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    routes:
      - method: GET
        path: /orders/{id}
        upstream: erp
        scope: orders.read
        rate_limit: {per_client: 10/min}
        response_fields: [id, email]
        field_categories: {email: user.contact.email}
      - method: POST
        path: /orders
        upstream: crm
        scope: orders.write
        rate_limit: {per_client: 10/min}
        request_schema:
          type: object
          additionalProperties: false
          properties: {id: {type: string}}
"""

Write = Callable[..., Path]


@pytest.fixture
def write_manifest(tmp_path: Path) -> Write:
    """Write BASE with (old, new) replacements applied; each old text must occur."""

    def write(*changes: tuple[str, str], text: str = BASE) -> Path:
        for old, new in changes:
            assert old in text, old
            text = text.replace(old, new)
        path = tmp_path / "interlock.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def by_item(scorecard: Scorecard, integration: str = "sync") -> dict[str, Finding]:
    """The scorecard's findings of one integration, by item id (one each)."""
    found = [f for f in scorecard.findings if f.integration == integration]
    result = {f.item: f for f in found}
    assert len(result) == len(found)
    return result


def check(path: Path) -> dict[str, Finding]:
    """Configuration-mode findings of the integration ``sync`` in ``path``."""
    return by_item(run_check(path))
