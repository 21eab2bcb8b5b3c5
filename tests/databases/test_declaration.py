"""The declaration: row-filter grammar (an injection boundary), TLS rule, located errors, check, ROPA."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import jsonschema_rs
import pytest

from interlock.check.config_checks import check_configuration
from interlock.config.databases import (
    And,
    Compare,
    DatabaseSystem,
    InList,
    IsNull,
    Not,
    Or,
    parse_filter,
)
from interlock.config.loader import load_manifest
from interlock.databases import mariadb, postgresql
from interlock.databases.plan import plan_for
from interlock.errors import InvalidRequestError, ManifestError
from interlock.privacy.ropa import build_register
from interlock.privacy.ropa_render import json_schema, to_json
from tests.databases.conftest import INTEGRATION, manifest_text


def test_the_grammar_builds_a_tree() -> None:
    tree = parse_filter("country = 'DE' and (id >= 10 or email is not null) and not x in (1, 2.5)")
    assert tree == And(
        (
            Compare("country", "=", "DE"),
            Or((Compare("id", ">=", 10), IsNull("email", negated=True))),
            Not(InList("x", (1, Decimal("2.5")))),
        )
    )
    assert parse_filter("a != 'it''s'") == Compare("a", "<>", "it's")
    assert parse_filter("flag = TRUE") == Compare("flag", "=", True)


@pytest.mark.parametrize(
    "text",
    [
        "country = 'DE'; DROP TABLE customers",
        "country = 'DE' -- comment",
        "country = 'DE' /* x */",
        "1 = 1",
        "country = country",
        "country = upper('de')",
        "country = 'DE' or 1=1",
        "country = 'unterminated",
        'country = "DE"',
        "country = 'DE' union select 1",
        "(country = 'DE'",
        "country = E'\\x41'",
        "country = $$DE$$",
        "country = 'DE' and",
        "Country = 'DE'",
        "pg_read_file('/etc/passwd') is null",
        "country in (select country from x)",
        "id = 0x41",
        "country = :value",
        "country = 'a\x00b'",
        "",
        "(" * 40 + "a = 1" + ")" * 40,
    ],
)
def test_anything_but_comparisons_of_columns_with_literals_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rows"):
        parse_filter(text)


def test_the_drivers_quote_what_the_grammar_lets_through() -> None:
    tree = parse_filter(r"name = 'x''; DROP TABLE t; --' or name = 'a\b'")
    assert postgresql.filter_sql(tree).as_string() == (
        "(\"name\" = 'x''; DROP TABLE t; --' OR \"name\" =  E'a\\\\b')"
    )
    text, params = mariadb.filter_sql(tree)
    assert text == "(`name` = %s OR `name` = %s)"
    assert params == ("x'; DROP TABLE t; --", "a\\b")
    with pytest.raises(ValueError, match="identifier"):
        mariadb.ident("a`b")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "interlock.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _manifest(kind: str = "postgresql", host: str = "127.0.0.1") -> str:
    return manifest_text(kind, host, 5432, "test", "sales", "p")


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ManifestError) as raised:
        load_manifest(_write(tmp_path, text))
    return str(raised.value)


def test_tls_may_be_off_only_on_loopback(tmp_path: Path) -> None:
    message = _error(tmp_path, _manifest(host="db.example.com"))
    assert "interlock.yaml:" in message
    assert "tls: disable is refused for db.example.com" in message
    text = _manifest(host="db.example.com").replace("tls: disable", "tls: verify-full")
    assert "verify-full needs ca" in _error(tmp_path, text)
    assert "ca cannot switch" in _error(tmp_path, text.replace("tls: verify-full", "ca: none"))
    verified = text.replace("tls: verify-full", "tls: verify-full\n    ca: file:/etc/db-ca.pem")
    manifest = load_manifest(_write(tmp_path, verified))
    assert manifest.databases["shared"].ca == "file:/etc/db-ca.pem"
    for host in ("127.0.0.1", "::1", "localhost", "/var/run/postgresql"):
        DatabaseSystem(
            kind="postgresql", host=host, database="d", tls="disable", admin="secret://a/b"
        )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("rows: \"country = 'DE'", "rows: \"country = 'DE' or 1=1"), "rows: expected word"),
        (("rows: \"country = 'DE'", "rows: \"name = 'x' and country = 'DE'"), "not among the"),
        (("write: [email]", "write: [name]"), "write names name"),
        (("system: shared", "system: other"), "unknown database system 'other'"),
        (("        billing:", "        nobody:"), "unknown client 'nobody'"),
        (("id: system.operations", "id: user.financial"), "not covered by the integration"),
        (("type: shared_database", "type: messaging"), "a database: section belongs to"),
        (("admin: secret://db/shared-admin", "admin: hunter2"), "secret://"),
        (("statement_timeout: 5s", "statement_timeout: 2h"), "between 1s and 1h"),
        (("table: sales.customers", "table: customers"), "table"),
    ],
)
def test_bad_input_is_one_located_line(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    text = _manifest()
    assert change[0] in text
    message = _error(tmp_path, text.replace(change[0], change[1], 1))
    assert expected in message
    assert message.splitlines()[0].startswith(str(tmp_path / "interlock.yaml") + ":")


def test_generated_names_that_are_too_long_are_refused(tmp_path: Path) -> None:
    text = _manifest().replace("prefix: p", "prefix: " + "p" * 30).replace("billing", "b" * 40)
    manifest = load_manifest(_write(tmp_path, text))
    with pytest.raises(InvalidRequestError, match="longer than 63"):
        plan_for(manifest, INTEGRATION)


def test_the_checklist_and_the_register_answer_from_the_section(tmp_path: Path) -> None:
    path = _write(tmp_path, _manifest())
    manifest = load_manifest(path)
    findings = {
        f.item: f for f in check_configuration(manifest, None, path) if f.integration == INTEGRATION
    }
    assert findings["least_privilege"].status == "pass"
    assert findings["type.shared_database.least_privilege_views"].status == "pass"
    assert findings["type.shared_database.database_tls"].status == "pass"
    assert findings["type.shared_database.change_control"].status == "needs_evidence"
    assert findings["minimisation"].status == "pass"
    assert (
        "crm-sync: customers = id, email, country of sales.customers"
        in (findings["minimisation"].evidence[0])
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    register = build_register(manifest, source=str(path), kek_backend="file", now=now)
    record = next(r for r in register.records if r.integration == INTEGRATION)
    consumers = {r.name.split(" ")[0]: r.name for r in record.recipients if r.kind == "consumer"}
    assert set(consumers) == {"crm-sync", "billing"}
    assert "reads system.operations through customer_ids" in consumers["billing"]
    assert "user.contact.email" in consumers["crm-sync"]
    assert any("rows filtered in customers" in m.description for m in record.measures)
    jsonschema_rs.validator_for(json_schema()).validate(to_json(register))


def _second_integration(name: str, client: str, prefix: str | None) -> str:
    """Another shared_database integration on the same system, for ``client``."""
    line = f"      prefix: {prefix}\n" if prefix else ""
    return f"""  {name}:
    type: shared_database
    source: erp
    target: crm
    client: {client}
    purpose: Another reader of the ERP database
    legal_basis: contract
    data_categories: [system.operations]
    data_subjects: [customer]
    retention: P90D
    database:
      system: shared
{line}      consumers:
        {client}:
          views:
            ids:
              table: sales.customers
              columns: {{id: system.operations}}
"""


@pytest.mark.parametrize(
    ("second", "first_at", "second_at"),
    [
        # x + client y-z and x-y + client z both generate x_y_z, x_y_z_a, x_y_z_b.
        (
            ("p-crm", "sync", None),
            f"integrations.{INTEGRATION}.database.consumers.crm-sync",
            "integrations.p-crm.database.consumers.sync",
        ),
        # Two integrations with one prefix share the owner role (and here a consumer).
        (
            ("other", "billing", "p"),
            f"integrations.{INTEGRATION}.database.prefix",
            "integrations.other.database.prefix",
        ),
    ],
)
def test_generated_names_colliding_across_integrations_are_refused(
    tmp_path: Path, second: tuple[str, str, str | None], first_at: str, second_at: str
) -> None:
    """Two integrations may never drive the same role or schema: one client would read the
    other's views."""
    text = _manifest().replace(
        "  billing: {auth: [oauth2]}", "  billing: {auth: [oauth2]}\n  sync: {auth: [oauth2]}"
    )
    message = _error(tmp_path, text + _second_integration(*second))
    line = message.splitlines()[0]
    assert line.startswith(str(tmp_path / "interlock.yaml") + ":")
    assert f"{second_at}: " in line
    assert "is also generated by" in line
    assert first_at in line
    assert "(and " not in line  # one finding per pair of places


def test_a_view_schema_may_not_be_a_source_schema(tmp_path: Path) -> None:
    """``p_billing`` as the source would get the consumer's views, owner and ACL reset."""
    text = manifest_text("postgresql", "127.0.0.1", 5432, "test", "p_billing", "p")
    line = _error(tmp_path, text).splitlines()[0]
    assert f"integrations.{INTEGRATION}.database.consumers.billing: " in line
    assert "the generated schema p_billing is a source schema at" in line
