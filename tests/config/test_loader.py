"""Loading: every error at once, located; the shipped example is clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.config.loader import Diagnostic, check_manifest, format_path, load_manifest
from interlock.config.manifest import Manifest
from interlock.errors import ManifestError
from tests.config.manifests import VALID, check, messages

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"

# Seven different mistakes, each on its own line (comments give the line number).
MISTAKES = """\
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
  order-sync: {auth: [oauth2], roles: [order-reader, admin]}
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
      - {method: DELETE, path: "/orders/{id}", upstream: erp, scope: orders.delete}
"""


def test_example_manifest_is_clean() -> None:
    """examples/interlock.yaml validates with no errors and no warnings."""
    report = check_manifest(EXAMPLE)
    assert report.errors == (), messages(report)
    assert report.warnings == ()
    manifest = load_manifest(EXAMPLE)
    assert set(manifest.systems) == {"erp", "crm", "warehouse"}
    assert set(manifest.integrations) == {
        "order-sync",
        "analytics-feed",
        "order-events",
        "order-stream",
    }
    assert sum(len(flow.routes) for flow in manifest.integrations.values()) == 5
    assert manifest.integrations["order-sync"].transfer is not None


def test_the_example_round_trips_through_json() -> None:
    """Dumping the manifest to JSON (durations as ISO 8601, rates as text) and validating
    it again gives the same manifest, without serializer warnings."""
    manifest = load_manifest(EXAMPLE)
    dumped = manifest.model_dump(mode="json")
    assert dumped["integrations"]["order-sync"]["retention"] == "P90D"
    assert dumped["integrations"]["order-sync"]["routes"][0]["rate_limit"]["per_client"] == (
        "1000/min"
    )
    assert Manifest.model_validate(dumped) == manifest
    assert Manifest.model_validate_json(manifest.model_dump_json()) == manifest
    assert "properties" in Manifest.model_json_schema()


def test_seven_mistakes_give_seven_located_errors_in_one_run(tmp_path: Path) -> None:
    """TLS 1.0, http upstream, verify: false, unknown role, unknown system, duplicate
    route and unknown scope are all reported by one check, each at its line and column."""
    report = check(tmp_path, MISTAKES)
    got = [(d.line, d.column, d.path) for d in report.errors]
    assert got == [
        (2, 20, "tls.min_version"),
        (5, 10, "systems.erp.url"),
        (7, 5, "systems.erp.verify"),
        (12, 54, "clients.order-sync.roles[1]"),
        (16, 13, "integrations.order-sync.target"),
        (23, 29, "integrations.order-sync.routes[1].path"),
        (24, 70, "integrations.order-sync.routes[2].scope"),
    ]
    path = tmp_path / "interlock.yaml"
    printed = [str(d) for d in report.errors]
    assert printed[0].startswith(f"{path}:2:20: tls.min_version: TLS 1.0 is refused")
    assert printed[1].startswith(f"{path}:5:10: systems.erp.url: upstream must use https://")
    assert printed[2].startswith(f"{path}:7:5: systems.erp.verify: 'verify' is refused")
    assert printed[3] == (
        f"{path}:12:54: clients.order-sync.roles[1]: unknown role 'admin' (known: order-reader)"
    )
    assert printed[4] == (
        f"{path}:16:13: integrations.order-sync.target: unknown system 'crmm'; did you mean 'crm'?"
    )
    assert "duplicate route GET /orders/{order_id}" in printed[5]
    assert "unknown scope 'orders.delete'" in printed[6]
    assert report.manifest is None


def test_load_manifest_raises_with_every_diagnostic(tmp_path: Path) -> None:
    """load_manifest refuses an invalid file and carries all errors."""
    path = tmp_path / "interlock.yaml"
    path.write_text(MISTAKES)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert len(caught.value.diagnostics) == 7
    assert all(isinstance(d, Diagnostic) for d in caught.value.diagnostics)
    assert "and 6 more" in str(caught.value)


def test_load_manifest_of_a_missing_file_says_so(tmp_path: Path) -> None:
    """A file that cannot be read is one diagnostic at 1:1, carried by ManifestError."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(ManifestError, match="cannot read file") as caught:
        load_manifest(path)
    (diagnostic,) = caught.value.diagnostics
    assert str(diagnostic) == f"{path}:1:1: cannot read file: No such file or directory"


def test_invalid_yaml_is_one_diagnostic_at_the_syntax_error(tmp_path: Path) -> None:
    """A syntax error is reported where the parser found it, with no model errors."""
    report = check(tmp_path, "version: 1\nsystems: {erp: [1, 2}\n")
    (error,) = report.errors
    assert (error.line, error.column) == (2, 21)  # the '}' that should have been ']'
    assert "invalid YAML" in error.message
    assert report.manifest is None


def test_warnings_print_with_a_warning_label(tmp_path: Path) -> None:
    """Warnings print as FILE:LINE:COL: warning: path: message and keep the manifest."""
    report = check(tmp_path, VALID.replace("[orders.read]", "[orders.read, orders.delete]"))
    (warning,) = report.warnings
    assert str(warning).startswith(f"{tmp_path / 'interlock.yaml'}:7:40: warning: roles.")
    assert report.ok
    assert report.manifest is not None


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        ("systems: {}\n", "", "missing required field 'version'"),
        ("version: 2\n", "version", "unsupported version 2"),
        ("version: true\n", "version", "unsupported version True"),
        ("version: 1.0\n", "version", "unsupported version 1.0"),
        ("version: '1'\n", "version", "unsupported version '1'"),
        ("version: 1\ntls: '1.3'\n", "tls", "expected a mapping"),
        (
            "version: 1\nintegrations:\n  x: {routes: {a: 1}}\n",
            "integrations.x.routes",
            "routes must be a list",
        ),
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
    assert any("duplicate key 'erp'" in d.message and d.line == 6 for d in report.errors)


def test_format_path_uses_dots_and_indexes() -> None:
    """Paths print as integrations.x.routes[0].scope."""
    assert (
        format_path(("integrations", "x", "routes", 0, "scope")) == "integrations.x.routes[0].scope"
    )
    assert format_path(()) == ""


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nsystems: !!python/object:os.system {}\n",
        "version: 1\nroles: !!set {a, b}\n",
        "version: 1\nsystems:\n  erp: {url: !!binary aGVsbG8=, location: DE}\n",
        "version: 1\nx: " + "[" * 500 + "]" * 500 + "\n",
        "version: 1\nintegrations:\n  x: {retention: 99999999999999999999d}\n",
        "version: 1\nintegrations:\n  x: {routes: [{rate_limit: {per_ip: 1/99999999999999day}}]}\n",
        "version: 1\nsystems: {erp: {url: 'https://[::1', location: DE}}\n",
        "version: 1\n? [a]\n: b\n",
        "- - - 1\n",
        "version: 1\nsystems: null\nroles:\nclients: ''\nintegrations: 7\n",
    ],
)
def test_hostile_or_odd_input_gives_diagnostics_never_an_exception(
    tmp_path: Path, text: str
) -> None:
    """check_manifest turns every content problem into located errors; it never raises."""
    report = check(tmp_path, text)
    assert report.errors
    assert all(d.line >= 1 and d.column >= 1 for d in report.errors)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("source: erp", 'source: "crm\\nOK: injected"'),
        ("source: erp", 'source: "crm\\r\\nOK: injected"'),
        (
            "  crm: {url",
            '  "k\\nOK: injected": {url: "https://k.example", location: DE}\n  crm: {url',
        ),
        ("scope: orders.read}", 'scope: "orders.read\\u2028OK: injected"}'),
    ],
)
def test_a_value_with_a_line_break_never_adds_a_line_to_the_diagnostics(
    tmp_path: Path, old: str, new: str
) -> None:
    """Every diagnostic is one line, whatever the values it names hold (escaped)."""
    assert old in VALID
    report = check(tmp_path, VALID.replace(old, new, 1))
    assert report.errors, "the edit is an error"
    for diagnostic in (*report.errors, *report.warnings):
        text = str(diagnostic)
        assert len(text.splitlines()) == 1, text  # splitlines also breaks at U+2028, NEL
