"""Business rules: SQL-view lookups on real databases (read-only) and entry-point callables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from interlock.config.manifest import Manifest, SqlRule
from interlock.errors import ConfigError, InterlockError
from interlock.gateway.problems import REFUSALS
from interlock.testing.services import POSTGRES
from interlock.validation.errors import BodyRefused, Violation
from interlock.validation.example_rules import order_total_matches_lines
from interlock.validation.rules import RuleInput, Rules, RuleUnavailableError, SqlLookup
from tests.conftest import need

BASE: dict[str, Any] = {
    "version": 1,
    "systems": {"crm": {"url": "https://crm.example", "location": "DE"}},
    "roles": {"w": {"scopes": ["accounts.write"]}},
    "clients": {"app": {"auth": ["api_key"], "roles": ["w"]}},
}


def _manifest(rules: dict[str, Any], route_rules: list[str]) -> Manifest:
    return Manifest.model_validate(
        {
            **BASE,
            "rules": rules,
            "integrations": {
                "flow": {
                    "source": "crm",
                    "target": "crm",
                    "client": "app",
                    "purpose": "test",
                    "legal_basis": "contract",
                    "retention": "1d",
                    "routes": [
                        {
                            "method": "POST",
                            "path": "/accounts/{account_id}/orders",
                            "upstream": "crm",
                            "scope": "accounts.write",
                            "rules": route_rules,
                        }
                    ],
                }
            },
        }
    )


def _input(body: Any = None, path: dict[str, str] | None = None) -> RuleInput:
    return RuleInput(body, path or {}, {}, "app", "POST /accounts/{account_id}/orders")


@pytest.fixture
def sqlite_catalogue(tmp_path: Path) -> str:
    """A SQLite database with a table and an 'active accounts' view over it."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE accounts (account_id TEXT, active INTEGER)")
        connection.exec_driver_sql("INSERT INTO accounts VALUES ('A-1', 1), ('A-2', 0), ('A-3', 1)")
        connection.exec_driver_sql(
            "CREATE VIEW active_accounts AS SELECT account_id FROM accounts WHERE active = 1"
        )
    engine.dispose()
    return url


SPEC = {
    "database": "secret://crm/readonly-url",
    "view": "active_accounts",
    "column": "account_id",
    "value": "path:account_id",
    "message": "the account must exist and be active",
}


def test_a_sql_rule_admits_existing_values_and_names_missing_ones(sqlite_catalogue: str) -> None:
    rules = Rules(
        _manifest({"account_active": SPEC}, ["account_active"]), lambda _: sqlite_catalogue
    )
    ruleset = rules.for_route(["account_active"])
    assert ruleset is not None
    ruleset.check(_input(path={"account_id": "A-1"}))
    with pytest.raises(BodyRefused) as refused:
        ruleset.check(_input(path={"account_id": "A-2"}))
    assert (REFUSALS[refused.value.code].status, refused.value.code) == (422, "rule-violation")
    assert refused.value.violations == (
        Violation("the account must exist and be active (A-2)", rule="account_active"),
    )
    rules.close()


def test_a_sql_rule_checks_every_item_of_an_array(sqlite_catalogue: str) -> None:
    spec = {**SPEC, "value": "body:lines[].account"}
    lookup = SqlLookup("accounts", SqlRule.model_validate(spec), lambda _: sqlite_catalogue)
    body = {"lines": [{"account": "A-1"}, {"account": "A-3"}, {"account": "Z-9"}]}
    assert [v.detail for v in lookup.check(_input(body))] == [
        "the account must exist and be active (Z-9)"
    ]
    lookup.close()


BODY_SPEC = {**SPEC, "value": "body:account"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"account": ["EVIL"]}, "must be a single text, number or boolean value, not an array"),
        ({"account": None}, "must be a single text, number or boolean value, not null"),
        (
            {"account": {"id": "A-1"}},
            "must be a single text, number or boolean value, not an object",
        ),
        ({}, "is required"),
        (None, "is required"),
    ],
    ids=["list", "null", "object", "missing", "no-body"],
)
def test_a_sql_rule_refuses_an_input_it_cannot_look_up(
    sqlite_catalogue: str, body: Any, detail: str
) -> None:
    """Issue 18 item 7: a list, null, object or missing input fails closed (422), never passes."""
    rules = Rules(
        _manifest({"account_active": BODY_SPEC}, ["account_active"]), lambda _: sqlite_catalogue
    )
    ruleset = rules.for_route(["account_active"])
    assert ruleset is not None
    with pytest.raises(BodyRefused) as refused:
        ruleset.check(_input(body))
    assert (REFUSALS[refused.value.code].status, refused.value.code) == (422, "rule-violation")
    assert refused.value.violations == (
        Violation(detail, pointer="#/account", rule="account_active"),
    )
    # The problem names the field, never the view, column or database behind the rule.
    text = repr(refused.value.extra)
    for internal in ("active_accounts", "account_id", "sqlite"):
        assert internal not in text
    rules.close()


def test_a_sql_rule_refuses_a_path_through_something_else(sqlite_catalogue: str) -> None:
    """A scalar where an object or array is expected, and an item without the field, are refused."""
    spec = SqlRule.model_validate({**SPEC, "value": "body:lines[].account"})
    lookup = SqlLookup("accounts", spec, lambda _: sqlite_catalogue)
    assert lookup.check(_input({"lines": "A-1"})) == [
        Violation("must be an array, not text", pointer="#/lines", rule="accounts")
    ]
    assert lookup.check(_input({"lines": [{"account": "A-1"}, "A-1", {"x": 1}]})) == [
        Violation("must be an object, not text", pointer="#/lines/1", rule="accounts"),
        Violation("is required", pointer="#/lines/2/account", rule="accounts"),
    ]
    assert lookup.check(_input(["A-1"])) == [
        Violation("must be an object, not an array", pointer="#", rule="accounts")
    ]
    assert lookup.check(_input({"lines": []})) == []  # nothing to check; the schema decides
    lookup.close()


def test_an_optional_input_may_be_absent_but_not_malformed(sqlite_catalogue: str) -> None:
    """``optional: true`` skips a missing value; null, lists and objects are still refused."""
    spec = SqlRule.model_validate({**BODY_SPEC, "optional": True})
    lookup = SqlLookup("account_active", spec, lambda _: sqlite_catalogue)
    assert lookup.check(_input({})) == []
    assert lookup.check(_input(None)) == []
    assert lookup.check(_input({"account": "A-1"})) == []
    assert [v.detail for v in lookup.check(_input({"account": "A-2"}))] == [
        "the account must exist and be active (A-2)"
    ]
    for malformed in (["A-1"], None, {"id": "A-1"}):
        (violation,) = lookup.check(_input({"account": malformed}))
        assert violation.pointer == "#/account"
        assert violation.detail.startswith("must be a single text, number or boolean value")
    lookup.close()


def test_a_missing_query_parameter_is_refused_unless_optional(sqlite_catalogue: str) -> None:
    """``query:x`` fails closed like a body field."""
    required = SqlLookup(
        "a", SqlRule.model_validate({**SPEC, "value": "query:account"}), lambda _: sqlite_catalogue
    )
    assert required.check(_input()) == [Violation("is required", parameter="account", rule="a")]
    optional = SqlLookup(
        "a",
        SqlRule.model_validate({**SPEC, "value": "query:account", "optional": True}),
        lambda _: sqlite_catalogue,
    )
    assert optional.check(_input()) == []
    required.close()
    optional.close()


def test_optional_is_refused_on_a_path_parameter() -> None:
    """The loader refuses ``optional`` where it cannot mean anything (a path value is always there)."""
    with pytest.raises(ValueError, match="optional applies to body: and query: values"):
        SqlRule.model_validate({**SPEC, "optional": True})
    with pytest.raises(ValueError, match="optional"):
        SqlRule.model_validate({**BODY_SPEC, "optional": "sometimes"})


def test_injection_strings_are_values_not_sql(sqlite_catalogue: str) -> None:
    lookup = SqlLookup("a", SqlRule.model_validate(SPEC), lambda _: sqlite_catalogue)
    for hostile in ("A-1' OR '1'='1", "A-1; DROP TABLE accounts;--", "' UNION SELECT 1--"):
        assert len(lookup.check(_input(path={"account_id": hostile}))) == 1
    assert lookup.check(_input(path={"account_id": "A-1"})) == []  # the table is still there
    lookup.close()


def test_the_sqlite_connection_is_read_only(sqlite_catalogue: str) -> None:
    lookup = SqlLookup("a", SqlRule.model_validate(SPEC), lambda _: sqlite_catalogue)
    lookup.check(_input(path={"account_id": "A-1"}))
    with lookup._connect() as connection, pytest.raises(sa.exc.OperationalError):
        connection.exec_driver_sql("DELETE FROM accounts")
    lookup.close()


def test_an_unreachable_database_fails_closed_without_detail(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}"
    lookup = SqlLookup("account_active", SqlRule.model_validate(SPEC), lambda _: missing)
    with pytest.raises(RuleUnavailableError) as failed:
        lookup.check(_input(path={"account_id": "A-1"}))
    assert str(failed.value) == "rule account_active cannot be evaluated"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://reader@db.example.com/crm",
        "postgresql+psycopg://reader@db.example.com/crm?sslmode=require",
        "postgresql+psycopg://reader@localhost/crm?hostaddr=203.0.113.5",
        "mysql+pymysql://reader@10.0.0.9/crm",
        "mysql+pymysql://reader@db.example.com/crm?ssl_ca=/ca.pem&ssl_check_hostname=false",
    ],
)
def test_a_rule_whose_remote_database_lacks_verified_tls_is_refused_at_load(url: str) -> None:
    """The vault's URL would let the lookup (and its password) cross the network without
    verified TLS: the manifest does not load, and a lookup never connects."""
    manifest = _manifest({"account_active": SPEC}, ["account_active"])
    with pytest.raises(ConfigError, match=r"^rule account_active: .*(sslmode=verify-full|ssl_)"):
        Rules(manifest, lambda _: url)
    lookup = SqlLookup("account_active", SqlRule.model_validate(SPEC), lambda _: url)
    with pytest.raises(RuleUnavailableError):
        lookup.check(_input(path={"account_id": "A-1"}))
    assert lookup._engine is None


def test_a_rule_on_a_verified_or_local_database_or_an_unreadable_secret_loads() -> None:
    """Verified TLS, loopback and a secret not stored yet (the first lookup answers 503) load."""
    manifest = _manifest({"account_active": SPEC}, ["account_active"])
    for url in (
        "postgresql+psycopg://reader@db.example.com/crm?sslmode=verify-full",
        "mysql+pymysql://reader@db.example.com/crm?ssl_ca=/etc/ssl/ca.pem",
        "postgresql+psycopg://reader@127.0.0.1/crm",
    ):
        Rules(manifest, dict.fromkeys([SPEC["database"]], url).__getitem__).close()

    def missing(reference: str) -> str:
        raise InterlockError(f"no secret {reference}")

    Rules(manifest, missing).close()


@pytest.fixture
def postgres_view() -> Iterator[tuple[str, str]]:
    """A schema with a table, a view and a role that may only SELECT from the view."""
    base = make_url(need(POSTGRES)).set(drivername="postgresql+psycopg")
    schema = f"r_{uuid.uuid4().hex[:12]}"
    role = f"rule_reader_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        connection.exec_driver_sql(f"CREATE TABLE {schema}.products (sku TEXT, sellable BOOL)")
        connection.exec_driver_sql(
            f"INSERT INTO {schema}.products VALUES ('SKU-1', true), ('SKU-2', false)"  # noqa: S608
        )
        connection.exec_driver_sql(
            f"CREATE VIEW {schema}.sellable AS SELECT sku FROM {schema}.products WHERE sellable"  # noqa: S608
        )
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        connection.exec_driver_sql(f"GRANT SELECT ON {schema}.sellable TO {role}")
    try:
        yield base.set(username=role).render_as_string(hide_password=False), schema
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            connection.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


@pytest.mark.postgres
def test_a_sql_rule_on_postgresql_with_a_select_only_role(postgres_view: tuple[str, str]) -> None:
    url, schema = postgres_view
    spec = SqlRule.model_validate(
        {
            **SPEC,
            "view": f"{schema}.sellable",
            "column": "sku",
            "value": "body:lines[].sku",
            "message": "the product must be sellable",
        }
    )
    lookup = SqlLookup("product_sellable", spec, lambda _: url)
    body = {"lines": [{"sku": "SKU-1"}, {"sku": "SKU-2"}, {"sku": "SKU-1"}]}
    assert [v.detail for v in lookup.check(_input(body))] == [
        "the product must be sellable (SKU-2)"
    ]
    with lookup._connect() as connection, pytest.raises(sa.exc.DBAPIError):
        # The table itself: no grant. (The schema name is ours, generated above.)
        connection.exec_driver_sql(f"SELECT * FROM {schema}.products")  # noqa: S608
    lookup.close()


def test_python_rules_come_from_entry_points() -> None:
    rules = Rules(_manifest({}, ["order_total_matches_lines"]), lambda _: "")
    ruleset = rules.for_route(["order_total_matches_lines"])
    assert ruleset is not None
    good = {
        "total": 25.5,
        "lines": [{"quantity": 2, "unit_price": 10}, {"quantity": 1, "unit_price": "5.50"}],
    }
    ruleset.check(_input(good))
    with pytest.raises(BodyRefused) as refused:
        ruleset.check(_input({**good, "total": 26}))
    (violation,) = refused.value.violations
    assert violation == Violation(
        "total must equal the sum of the lines (25.50)", "#/total", rule="order_total_matches_lines"
    )


def test_an_unknown_rule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'no_such_rule'"):
        Rules(_manifest({}, ["no_such_rule"]), lambda _: "")


def test_a_failing_python_rule_fails_closed_without_its_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_: RuleInput) -> list[Violation]:
        raise RuntimeError("secret internal detail /srv/app/rules.py line 3")

    monkeypatch.setattr(
        "interlock.validation.example_rules.order_total_matches_lines", broken, raising=True
    )
    rules = Rules(_manifest({}, ["order_total_matches_lines"]), lambda _: "")
    ruleset = rules.for_route(["order_total_matches_lines"])
    assert ruleset is not None
    with pytest.raises(RuleUnavailableError) as failed:
        ruleset.check(_input({"total": 1, "lines": []}))
    assert "secret" not in str(failed.value)


def test_order_total_rule_points_at_a_bad_line() -> None:
    violations = list(order_total_matches_lines(_input({"total": 1, "lines": [{"quantity": "x"}]})))
    assert violations == [Violation("a line needs a numeric quantity and unit_price", "#/lines/0")]


def test_order_total_rule_takes_exact_decimals() -> None:
    """parse_json hands a number a double cannot carry over as Decimal; the rule counts it."""
    body = {
        "total": Decimal("10.00000000000000000001"),
        "lines": [{"quantity": 1, "unit_price": Decimal("10.00000000000000000001")}],
    }
    assert list(order_total_matches_lines(_input(body))) == []
