"""Loading: every error at once, located; the shipped example is clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.config.loader import check_manifest, format_path, load_manifest
from interlock.errors import ManifestError
from tests.config.manifests import VALID, check, messages

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"

FIVE_MISTAKES = """\
version: 1
tls: {min_version: "1.0"}
systems:
  erp:
    url: http://erp.internal:9443
    location: DE
    verify: false
  crm: {url: "https://crm.example.com", location: US}
roles:
  order-reader: {scopes: [orders.read]}
clients:
  order-sync: {auth: [oauth2], roles: [order-reader]}
integrations:
  order-sync:
    source: erp
    target: crmm
    client: order-sync
    purpose: Sync orders
    legal_basis: contract
    retention: 90d
    routes:
      - {method: GET, path: "/orders/{id}", upstream: erp, scope: orders.read}
      - {method: GET, path: "/orders/{order_id}", upstream: erp, scope: orders.read}
"""


def test_example_manifest_is_clean() -> None:
    """examples/interlock.yaml validates with no errors and no warnings."""
    report = check_manifest(EXAMPLE)
    assert report.errors == (), messages(report)
    assert report.warnings == ()
    manifest = load_manifest(EXAMPLE)
    assert set(manifest.systems) == {"erp", "crm", "warehouse"}
    assert set(manifest.integrations) == {"order-sync", "analytics-feed"}
    assert sum(len(flow.routes) for flow in manifest.integrations.values()) == 4


def test_five_mistakes_give_five_located_errors_in_one_run(tmp_path: Path) -> None:
    """TLS 1.0, http upstream, verify: false, unknown system, duplicate route: all at once."""
    report = check(tmp_path, FIVE_MISTAKES)
    got = [(d.line, d.column, d.path) for d in report.errors]
    assert got == [
        (2, 20, "tls.min_version"),
        (5, 10, "systems.erp.url"),
        (7, 5, "systems.erp.verify"),
        (16, 13, "integrations.order-sync.target"),
        (23, 29, "integrations.order-sync.routes[1].path"),
    ]
    path = tmp_path / "interlock.yaml"
    assert str(report.errors[0]).startswith(f"{path}:2:20: tls.min_version: TLS 1.0 is refused")


def test_load_manifest_raises_with_every_diagnostic(tmp_path: Path) -> None:
    """load_manifest refuses an invalid file and carries all errors."""
    path = tmp_path / "interlock.yaml"
    path.write_text(FIVE_MISTAKES)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert len(caught.value.diagnostics) == 5
    assert "and 4 more" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        ("systems: {}\n", "", "missing required field 'version'"),
        ("version: 2\n", "version", "unsupported version 2"),
        ("version: 1\nsytems: {}\n", "sytems", "did you mean 'systems'?"),
        ("- just\n- a list\n", "", "a manifest is a mapping"),
        ("version: 1\nsystems: [erp]\n", "systems", "must be a mapping"),
        (
            "version: 1\nsystems:\n  erp: {url: 'https://e', location: DE, urll: x}\n",
            "systems.erp.urll",
            "did you mean 'url'?",
        ),
        (
            "version: 1\nsystems:\n  erp: {location: DE}\n",
            "systems.erp",
            "missing required field 'url'",
        ),
    ],
)
def test_structural_errors_are_located_and_helpful(
    tmp_path: Path, text: str, path: str, fragment: str
) -> None:
    """Unknown, missing and misshapen parts of the document name what to do."""
    report = check(tmp_path, text)
    assert any(d.path == path and fragment in d.message for d in report.errors), messages(report)


def test_duplicate_yaml_keys_are_manifest_errors(tmp_path: Path) -> None:
    """A system defined twice is an error, not a silent override."""
    text = VALID.replace(
        "roles:\n", '  erp: {url: "https://evil.example", location: US}\nroles:\n', 1
    )
    report = check(tmp_path, text)
    assert any("duplicate key 'erp'" in d.message and d.line == 5 for d in report.errors)


def test_format_path_uses_dots_and_indexes() -> None:
    """Paths print as integrations.x.routes[0].scope."""
    assert (
        format_path(("integrations", "x", "routes", 0, "scope")) == "integrations.x.routes[0].scope"
    )
    assert format_path(()) == ""
