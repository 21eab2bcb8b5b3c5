"""Validation that used to fail open, through the real gateway (issue 18 items 7, 8 and 9).

Each hostile request is refused with a problem document, leaves exactly one
audit entry (a failure, nothing forwarded), and never reaches the echo
upstream; the same request made harmless is served.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from interlock.testing.gateway import Env


@pytest.fixture(scope="module")
def writer(env: Env) -> dict[str, str]:
    """An API key for order-sync that may write."""
    token, _ = env.key(["orders.read", "orders.write"])
    return {"X-API-Key": token}


def _post(
    env: Env, path: str, key: dict[str, str], body: bytes, content_type: str = "application/json"
) -> tuple[int, dict[str, str], Any]:
    return env.request("POST", path, {**key, "Content-Type": content_type}, body)


def _refused(
    env: Env, answer: tuple[int, dict[str, str], Any], status: int, code: str
) -> dict[str, Any]:
    """Assert a refusal with ``status`` and ``code``, audited once, nothing forwarded."""
    got, headers, problem = answer
    assert got == status, problem
    assert headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == f"urn:interlock:problem:{code}"
    (entry,) = env.audit_entries(headers["x-request-id"])
    assert entry["outcome"] == {"result": "failure", "status": status}
    assert entry["volume"]["records"] == 0  # nothing was forwarded
    return dict(problem)


# --- item 7: business rules fail closed ---


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"sku": ["EVIL"]}', "not an array"),
        (b'{"sku": null}', "not null"),
        (b'{"sku": {"id": "SKU-1"}}', "not an object"),
        (b"{}", "is required"),
        (b'{"skU": "SKU-1"}', "is required"),
    ],
    ids=["list", "null", "object", "missing", "misspelt"],
)
def test_a_rule_input_that_is_not_one_value_is_refused_with_422(
    env: Env, writer: dict[str, str], body: bytes, detail: str
) -> None:
    """A SQL rule on ``body:sku`` refuses what it cannot look up, naming the field only."""
    problem = _refused(env, _post(env, "/v/rule", writer, body), 422, "rule-violation")
    (error,) = problem["errors"]
    assert error["pointer"] == "#/sku"
    assert error["rule"] == "sku_sellable"
    assert detail in error["detail"]
    text = json.dumps(problem)
    for internal in ("sellable_products", "catalogue", "sqlite", "SELECT"):
        assert internal not in text


def test_a_rule_with_a_usable_input_still_decides(env: Env, writer: dict[str, str]) -> None:
    """One sellable SKU passes (the optional note_sku may be absent); an unknown one does not."""
    status, _, echoed = _post(env, "/v/rule", writer, b'{"sku": "SKU-1"}')
    assert status == 200, echoed
    assert json.loads(echoed["body"]) == {"sku": "SKU-1"}
    problem = _refused(
        env, _post(env, "/v/rule", writer, b'{"sku": "SKU-666"}'), 422, "rule-violation"
    )
    assert problem["errors"] == [
        {"detail": "the product is not sellable (SKU-666)", "rule": "sku_sellable"}
    ]


def test_an_optional_rule_input_may_be_absent_but_not_a_list(
    env: Env, writer: dict[str, str]
) -> None:
    """``optional: true`` on note_sku_sellable: absent passes, present is checked, a list refused."""
    assert _post(env, "/v/rule", writer, b'{"sku": "SKU-1", "note_sku": "SKU-2"}')[0] == 200
    problem = _refused(
        env,
        _post(env, "/v/rule", writer, b'{"sku": "SKU-1", "note_sku": ["SKU-666"]}'),
        422,
        "rule-violation",
    )
    assert [(e["pointer"], e["rule"]) for e in problem["errors"]] == [
        ("#/note_sku", "note_sku_sellable")
    ]


# --- item 9: schema bounds on the exact number ---

ORDER = (
    b'{"customer_id": "C-0042", "total": 1000.00, '
    b'"lines": [{"sku": "SKU-1", "quantity": QUANTITY, "unit_price": 1}]}'
)


def test_a_number_above_the_maximum_by_less_than_a_double_sees_is_refused(
    env: Env, writer: dict[str, str]
) -> None:
    """``quantity`` has ``type: integer, maximum: 1000``; 1000.000...01 was read as 1000.0."""
    body = ORDER.replace(b"QUANTITY", b"1000.00000000000000000001")
    problem = _refused(env, _post(env, "/v/orders", writer, body), 422, "schema-violation")
    pointers = {error["pointer"] for error in problem["errors"]}
    assert pointers == {"#/lines/0/quantity"}
    assert "1000.00000000000000000001" not in json.dumps(problem)  # worded from the keyword


def test_the_bound_itself_and_a_big_integer_are_judged_exactly(
    env: Env, writer: dict[str, str]
) -> None:
    """1000 passes; 2**53 + 1 as an integer is above the bound, not rounded onto it."""
    status, _, echoed = _post(env, "/v/orders", writer, ORDER.replace(b"QUANTITY", b"1000"))
    assert status == 200, echoed
    big = ORDER.replace(b"QUANTITY", b"9007199254740993")
    _refused(env, _post(env, "/v/orders", writer, big), 422, "schema-violation")


def test_a_huge_exponent_is_refused_as_out_of_range(env: Env, writer: dict[str, str]) -> None:
    """1e400 overflows a double: 400, never compared against a bound as infinity."""
    body = ORDER.replace(b"QUANTITY", b"1e400")
    problem = _refused(env, _post(env, "/v/orders", writer, body), 400, "json-limit-exceeded")
    assert problem["errors"][0]["pointer"] == "#/lines/0/quantity"


def test_a_minimised_body_carries_the_exact_number_that_was_checked(
    env: Env, writer: dict[str, str]
) -> None:
    """``request_fields`` re-serialises the body: a number a double cannot carry keeps its digits."""
    body = b'{"order_id": 1000.00000000000000000001, "secret": 1, "lines": [{"sku": 1e-400}]}'
    status, _, echoed = _post(env, "/v/forward", writer, body)
    assert status == 200, echoed
    assert echoed["body"] == '{"order_id":1000.00000000000000000001,"lines":[{"sku":1E-400}]}'


# --- item 8: CSV formulas whatever the body's dialect ---


@pytest.mark.parametrize(
    ("body", "formula"),
    [
        (b'sku;note\r\nSKU-1;=HYPERLINK("http://evil.example";"x")\r\n', "=HYPERLINK("),
        (b"sku;note\r\nSKU-1;=cmd|'/c calc'!A1\r\n", "=cmd|"),
        (b'sku\tnote\r\nSKU-1\t=HYPERLINK("http://evil.example";"x")\r\n', "=HYPERLINK("),
        (b"sku\tnote\r\nSKU-1\t=cmd|'/c calc'!A1\r\n", "=cmd|"),
    ],
    ids=["semicolon-hyperlink", "semicolon-dde", "tab-hyperlink", "tab-dde"],
)
def test_a_csv_body_in_another_dialect_reaches_the_target_neutralised(
    env: Env, writer: dict[str, str], body: bytes, formula: str
) -> None:
    """/v/csv declares ``,``; Excel in a German locale splits on ``;``: no live formula either way."""
    status, _, echoed = _post(env, "/v/csv", writer, body, "text/csv")
    assert status == 200, echoed
    forwarded = echoed["body"]
    assert "'" + formula in forwarded
    for separator in (",", ";", "\t", "|", "\n", "\r"):
        assert separator + formula not in forwarded
