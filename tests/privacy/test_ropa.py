"""``interlock privacy ropa``: the Art. 30 register generated from the manifest."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from interlock.cli.main import main
from interlock.config.loader import load_manifest
from interlock.privacy.ropa import Register, build_register
from interlock.privacy.ropa_html import to_html
from interlock.privacy.ropa_render import CSV_COLUMNS, json_schema, to_csv, to_json, to_markdown
from tests.conftest import isolate_cli

EXAMPLE = Path(__file__).parents[2] / "examples" / "interlock.yaml"
NOW = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)

# GDPR Art. 30(1)(a)-(g) and the JSON keys that carry them.
ART_30_1 = {
    "a": ("controller",),
    "b": ("purposes",),
    "c": ("data_subjects", "data_categories"),
    "d": ("recipients",),
    "e": ("transfer_statement",),  # the transfers list itself is empty without one
    "f": ("retention",),
    "g": ("measures",),
}


def _register(path: Path = EXAMPLE) -> Register:
    return build_register(load_manifest(path), source=str(path), kek_backend="file", now=NOW)


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "interlock.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI with its own data directory and no inherited settings."""
    isolate_cli(monkeypatch, tmp_path)


def test_json_has_a_valid_record_per_integration_with_every_art_30_1_field(
    cli: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's "done when": a record per integration, every Art. 30(1) field non-empty."""
    status = main(["privacy", "ropa", "--manifest", str(EXAMPLE), "--format", "json"])
    out = capsys.readouterr().out
    assert status == 0
    register: dict[str, Any] = json.loads(out)
    jsonschema_rs.validator_for(json_schema()).validate(register)
    records = {r["integration"]: r for r in register["records"]}
    assert (
        set(records)
        == set(load_manifest(EXAMPLE).integrations)
        == {
            "order-sync",
            "analytics-feed",
            "order-events",
            "order-stream",
        }
    )
    for name, record in records.items():
        for point, keys in ART_30_1.items():
            for key in keys:
                assert record[key], f"{name}: Art. 30(1)({point}) {key} is empty"
        assert record["controller"]["name"] == "Example Retail GmbH"
        assert record["dpo"]["contact"] == "dpo@example-retail.de"
        assert record["legal_basis_article"].startswith("Art. 6(1)")
    us = records["order-sync"]["transfers"]
    assert [(t["destination"], t["safeguard"], t["article"]) for t in us] == [
        ("US", "SCC", "Art. 46(2)(c)")
    ]
    # The EEA flow records "no transfer" explicitly (Art. 30(1)(e) "where applicable"),
    # naming each system its data reaches: the target and the route's upstream.
    assert records["analytics-feed"]["transfers"] == []
    assert records["analytics-feed"]["transfer_statement"] == (
        "no transfer to a third country: recipient systems warehouse, located in NL; "
        "erp, located in DE"
    )


def test_measures_come_from_the_configured_controls_with_their_place() -> None:
    """Art. 30(1)(g): TLS floor, auth, scope, minimisation, rate limit, audit, KEK backend."""
    record = {r.integration: r for r in _register().records}["order-sync"]
    at = {m.configured_at: m for m in record.measures}
    assert "TLS 1.3" in at["systems.crm.tls.min_version"].description
    assert "TLS 1.2" in at["tls.min_version"].description
    assert "oauth2, mtls" in at["clients.order-sync.auth"].description
    assert "orders.read" in at["integrations.order-sync.routes[0].scope"].description
    assert "customer.email" in at["integrations.order-sync.routes[0].response_fields"].description
    assert "1000/min" in at["integrations.order-sync.routes[0].rate_limit"].description
    assert "JSON Schema" in at["integrations.order-sync.routes[3].request_schema"].description
    assert "account_active" in at["integrations.order-sync.routes[3].rules"].description
    assert "file backend" in at["INTERLOCK_KEK_BACKEND"].description
    audit = [m for m in record.measures if m.kind == "audit"]
    assert [m.description.split(":")[0] for m in audit] == ["audit required"]


def test_declared_recipients_measures_and_adequacy_details_are_carried(tmp_path: Path) -> None:
    """Declared recipients/measures follow the configured ones; adequacy names its decision."""
    path = _edited(
        tmp_path,
        "      safeguard: SCC                 # Standard Contractual Clauses, Art. 46(2)(c)",
        "      safeguard: adequacy\n      dpf_certified: true\n"
        "    security_measures: [quarterly access review]",
    )
    record = {r.integration: r for r in _register(path).records}["order-sync"]
    (transfer,) = record.transfers
    assert transfer.article == "Art. 45"
    assert transfer.decision is not None
    assert "Data Privacy Framework" in transfer.decision
    assert (transfer.adopted, transfer.dpf_certified) == ("2023-07-10", True)
    assert record.measures[-1].configured_at == "integrations.order-sync.security_measures[0]"
    assert record.measures[-1].kind == "declared"
    # The target, then the ERP its routes forward to, then the declared ones.
    assert [r.kind for r in record.recipients] == ["system", "system", "declared", "declared"]
    assert (record.recipients[0].location, record.recipients[0].owner) == (
        "US",
        "sales-ops@example.com",
    )
    # The transfer covers the US target; the ERP is in the EEA.
    assert [(r.name, r.safeguard) for r in record.recipients[:2]] == [
        ("crm", "adequacy"),
        ("erp", None),
    ]


def test_special_categories_are_flagged_with_their_condition(tmp_path: Path) -> None:
    """Art. 9 data: the category is marked and the Art. 9(2) condition recorded."""
    path = _edited(
        tmp_path,
        "      - user.unique_id.pseudonymous\n",
        "      - user.unique_id.pseudonymous\n      - user.health_and_medical\n",
    )
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "    retention: 13w\n",
            "    retention: 13w\n    special_category_condition: explicit_consent\n",
        ),
        encoding="utf-8",
    )
    register = _register(path)
    record = {r.integration: r for r in register.records}["analytics-feed"]
    assert record.special
    assert record.special_category_condition == "explicit_consent"
    health = [c for c in record.data_categories if c.key == "user.health_and_medical"]
    assert health[0].special == "art9"
    assert "special categories" in to_markdown(register)
    jsonschema_rs.validator_for(json_schema()).validate(to_json(register))


def test_processor_role_gives_an_art_30_2_record(tmp_path: Path) -> None:
    """Where the deployment is a processor, the record says so and names the controller."""
    path = _edited(
        tmp_path,
        "    role: controller\n",
        "    role: processor\n    other_party: Client Corp SA, dpo@client.example\n",
    )
    body = to_json(_register(path))
    record = {r["integration"]: r for r in body["records"]}["order-sync"]
    assert (record["article"], record["other_party"]) == (
        "30(2)",
        "Client Corp SA, dpo@client.example",
    )
    assert record["controller"]["name"] == "Client Corp SA, dpo@client.example"
    assert record["processor"]["name"] == "Example Retail GmbH"
    jsonschema_rs.validator_for(json_schema()).validate(body)
    row = next(csv.DictReader(io.StringIO(to_csv(_register(path)))))
    assert row[CSV_COLUMNS[-1]] == "processor on behalf of Client Corp SA, dpo@client.example"


def test_csv_follows_the_ico_columns_and_neutralises_formulas(tmp_path: Path) -> None:
    """Header in the ICO template's order; a purpose starting with '=' is not a formula."""
    path = _edited(tmp_path, "      Weekly and monthly", "      =HYPERLINK(1) Weekly and monthly")
    rows = list(csv.reader(io.StringIO(to_csv(_register(path)))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0][:2] == ["Business function", "Purpose of processing"]
    by_name = {r[0]: r for r in rows[1:]}
    assert set(by_name) == {"order-sync", "analytics-feed", "order-events", "order-stream"}
    assert by_name["analytics-feed"][1].startswith("'=HYPERLINK(1)")
    assert by_name["order-sync"][7] == "US"


def test_csv_neutralises_a_formula_after_a_separator_inside_a_cell(tmp_path: Path) -> None:
    """A ';' spreadsheet (German Excel) splits the purpose: its second part is no formula either."""
    path = _edited(tmp_path, "      Weekly and monthly", "      Weekly; =HYPERLINK(1) and monthly")
    rows = list(csv.reader(io.StringIO(to_csv(_register(path)))))
    purpose = {r[0]: r for r in rows[1:]}["analytics-feed"][1]
    assert "; '=HYPERLINK(1)" in purpose


def test_markup_in_the_manifest_is_escaped_in_html_and_markdown(tmp_path: Path) -> None:
    """A purpose containing <script> is text on the page, never markup."""
    path = _edited(
        tmp_path,
        "      Weekly and monthly",
        "      <script>alert(1)</script> \"x\" & 'y' | Weekly and monthly",
    )
    register = _register(path)
    page = to_html(register)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &quot;x&quot; &amp; &#x27;y&#x27;" in page
    assert "\\| Weekly" in to_markdown(register)


def test_output_file_and_bad_manifest(
    cli: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-o writes the file; a manifest that does not load exits 2 with its error."""
    target = tmp_path / "ropa.md"
    assert main(["privacy", "ropa", "-m", str(EXAMPLE), "-o", str(target)]) == 0
    assert "## order-sync" in target.read_text(encoding="utf-8")
    broken = _edited(tmp_path, "legal_basis: contract", "legal_basis: whim")
    assert main(["privacy", "ropa", "-m", str(broken)]) == 2
    assert "error[" in capsys.readouterr().err


def test_a_non_eea_system_a_route_forwards_to_is_a_recipient_with_its_safeguard(
    tmp_path: Path,
) -> None:
    """The register lists every system the routes give data to, its country and its safeguard.

    The privacy review's case (finding 5): the source erp is in the US, the target
    in Germany, and the only route forwards the customer's e-mail address to erp.
    Before, the record listed crm (DE) alone and stated "no transfer".
    """
    path = tmp_path / "interlock.yaml"
    path.write_text(
        "version: 1\n"
        "organisation: {controller: {name: Example GmbH, contact: privacy@example.com}}\n"
        "systems:\n"
        '  erp: {url: "https://erp.example.com", location: US, owner: US ERP vendor}\n'
        '  crm: {url: "https://crm.example.de", location: DE}\n'
        "roles: {order-writer: {scopes: [orders.write]}}\n"
        "clients: {order-sync: {auth: [api_key], roles: [order-writer]}}\n"
        "integrations:\n"
        "  order-sync:\n"
        "    {source: erp, target: crm, client: order-sync, purpose: Sync confirmed orders,\n"
        "     legal_basis: contract, data_categories: [user.contact.email],\n"
        "     data_subjects: [customer], retention: P90D,\n"
        "     transfer: {destination: US, safeguard: SCC},\n"
        "     subjects: [{kind: email, in: request, json: /customer/email}],\n"
        '     routes: [{method: POST, path: "/orders", upstream: erp, scope: orders.write}]}\n',
        encoding="utf-8",
    )
    register = _register(path)
    (record,) = register.records
    assert [(r.name, r.kind, r.location, r.safeguard) for r in record.recipients] == [
        ("crm", "system", "DE", None),
        ("erp", "system", "US", "SCC"),
    ]
    assert record.recipients[1].configured_at == "integrations.order-sync.routes[0].upstream"
    assert "erp, owner US ERP vendor, located in US, transfer under SCC (Art. 46(2)(c))" in (
        to_markdown(register)
    )
    body = to_json(register)
    jsonschema_rs.validator_for(json_schema()).validate(body)
    assert body["records"][0]["recipients"][1]["safeguard"] == "SCC"
