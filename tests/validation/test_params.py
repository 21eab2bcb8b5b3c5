"""Path and query parameters: typed, pattern-checked, injection strings refused with a 400."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from interlock.config.manifest import Route
from interlock.gateway.problems import REFUSALS
from interlock.validation.errors import BodyRefused, Violation
from interlock.validation.params import MAX_QUERY_FIELDS, ParamCheck

UUID = "0b6f8b4e-2f3c-4a59-9a7e-5c1d2e3f4a5b"


def route(path: str = "/orders/{id}", **fields: Any) -> Route:
    """A GET route with the given params/query specs."""
    return Route.model_validate(
        {"method": "GET", "path": path, "upstream": "erp", "scope": "orders.read", **fields}
    )


ORDERS = ParamCheck(
    route(
        "/customers/{customer}/orders/{id}/{status}/{sku}/{free}",
        params={
            "customer": {"format": "uuid"},
            "id": {"type": "integer", "minimum": 1, "maximum": 10**12},
            "status": {"enum": ["open", "shipped", "cancelled"]},
            "sku": {"pattern": "[A-Z]{3}-[0-9]{6}"},
        },
        query={
            "limit": {"type": "integer", "minimum": 1, "maximum": 100},
            "price_min": {"type": "number", "minimum": 0},
            "express": {"type": "boolean"},
            "since": {"format": "date"},
            "changed": {"format": "date-time"},
            "email": {"format": "email"},
            "q": {"max_length": 20, "min_length": 2},
            "region": {"required": True, "enum": ["eu", "us"]},
            "page.size": {"type": "integer", "enum": [10, 50]},
        },
    )
)
GOOD_PATH = {
    "customer": UUID,
    "id": "42",
    "status": "open",
    "sku": "ABC-123456",
    "free": "order-7.v2",
}


def violations(path: dict[str, str] | None = None, query: str = "region=eu") -> list[Violation]:
    """The violations ORDERS finds (empty when it accepts)."""
    refusal = None
    try:
        ORDERS.check({**GOOD_PATH, **(path or {})}, query)
    except BodyRefused as exc:
        refusal = exc
    if refusal is None:
        return []
    assert (REFUSALS[refusal.code].status, refusal.code, REFUSALS[refusal.code].title) == (
        400,
        "invalid-parameter",
        "Invalid request parameter",
    )
    return list(refusal.violations)


def refused(path: dict[str, str] | None = None, query: str = "region=eu") -> list[str | None]:
    """The names of the parameters refused."""
    return [v.parameter for v in violations(path, query)]


def test_valid_parameters_pass() -> None:
    """Every spec satisfied: no refusal."""
    query = (
        "region=us&limit=100&price_min=0.5&express=true&since=2024-02-29"
        "&changed=2025-03-14T09:30:00Z&email=a.b%2Bc%40example.com&q=pump+seal&page.size=50"
    )
    assert violations(query=query) == []


# The injection corpus: none of these may reach an upstream as a typed parameter.
INJECTIONS = [
    "1 OR 1=1",
    "1' OR '1'='1",
    "1'; DROP TABLE orders;--",
    "1; DROP TABLE orders",
    "1 UNION SELECT username, password FROM users",
    "1) UNION SELECT NULL--",
    "-1 OR sleep(5)",
    "1/**/OR/**/1=1",
    "admin'--",
    "$(reboot)",
    "`id`",
    "| cat /etc/passwd",
    "; ls -la",
    "&& whoami",
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%00",
    "1\x00",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "1\r\nX-Injected: yes",
    "1\nSet-Cookie: a=b",
    "' || pg_sleep(5) --",
    "",
    " 42",
    "42 ",
]


# Text an integer parser elsewhere might take: refused by the typed parameters.
CONFUSIONS = ["1e3", "0x2A", "\uff14\uff12", "4\u0662", "1_000", "+-1"]  # fullwidth, Arabic-Indic


@pytest.mark.parametrize("attack", INJECTIONS)
@pytest.mark.parametrize("name", ["customer", "id", "status", "sku", "free"])
def test_injection_strings_are_refused_in_path_parameters(name: str, attack: str) -> None:
    """An integer id, a uuid, an enum, a patterned string and the default pattern refuse each."""
    assert refused({name: attack}) == [name]


@pytest.mark.parametrize("attack", CONFUSIONS)
@pytest.mark.parametrize("name", ["customer", "id", "status", "sku"])
def test_number_lookalikes_are_refused_by_typed_path_parameters(name: str, attack: str) -> None:
    """Exponents, hex, underscores and non-ASCII digits (\\d would match) are not integers."""
    assert refused({name: attack}) == [name]


@pytest.mark.parametrize("attack", INJECTIONS + CONFUSIONS)
@pytest.mark.parametrize(
    "name", ["limit", "express", "since", "changed", "region", "page.size", "price_min"]
)
def test_injection_strings_are_refused_in_query_parameters(name: str, attack: str) -> None:
    """The same corpus, percent-encoded in the query, against typed query parameters."""
    extra = "" if name == "region" else "region=eu&"
    assert refused(query=f"{extra}{name}={quote(attack, safe='')}") == [name]


@pytest.mark.parametrize("attack", [a for a in INJECTIONS if any(c < " " for c in a) or a == "%00"])
def test_control_characters_are_refused_even_in_a_free_string(attack: str) -> None:
    """A string without pattern still refuses NUL, CR and LF (header and log injection)."""
    found = violations(query=f"region=eu&q={quote(attack, safe='')}")
    if attack == "%00":  # the literal text '%00' is three harmless characters
        assert found == []
    else:
        assert [(v.parameter, v.detail) for v in found] == [
            ("q", "must not contain control characters")
        ]


def test_every_bad_parameter_is_listed_at_once() -> None:
    """Path and query problems together, each with its parameter and rule."""
    found = violations(
        {"id": "0", "status": "lost"},
        "limit=500&express=yes&since=2023-02-29&email=x@&q=a&page.size=20",
    )
    assert [(v.parameter, v.detail) for v in found] == [
        ("id", "must be at least 1"),
        ("status", "must be one of: open, shipped, cancelled"),
        ("limit", "must be at most 100"),
        ("express", "must be true or false"),
        ("since", "must be a valid date"),
        ("email", "must be a valid email"),
        ("q", "must be at least 2 characters long"),
        ("page.size", "must be one of: 10, 50"),
        ("region", "is required"),
    ]


def test_the_detail_names_the_count_and_parameters() -> None:
    """The problem's detail lists the refused names."""
    with pytest.raises(BodyRefused) as caught:
        ORDERS.check({**GOOD_PATH, "id": "x"}, "limit=0&region=eu")
    assert caught.value.detail == "2 parameters are invalid: id, limit; see errors."


def test_an_unknown_query_parameter_is_refused() -> None:
    """Deny by default: only the names the route lists."""
    found = violations(query="region=eu&debug=1&admin=true")
    assert [(v.parameter, v.detail) for v in found] == [
        ("debug", "is not an accepted query parameter"),
        ("admin", "is not an accepted query parameter"),
    ]


def test_query_names_are_case_sensitive() -> None:
    """'Limit' is not 'limit'; a case-insensitive upstream could read it anyway."""
    assert refused(query="region=eu&Limit=5") == ["Limit"]


def test_a_repeated_parameter_is_refused() -> None:
    """?limit=1&limit=1000: HTTP parameter pollution, refused even if both values are fine."""
    assert [(v.parameter, v.detail) for v in violations(query="region=eu&limit=1&limit=2")] == [
        ("limit", "must not be given more than once")
    ]


def test_a_missing_required_parameter_is_refused() -> None:
    """required: true means present, with or without other parameters."""
    assert refused(query="") == ["region"]
    assert refused(query="limit=5") == ["region"]


def test_a_blank_value_is_checked_like_any_other() -> None:
    """'limit=' is an empty integer: refused; 'q=' is shorter than min_length 2."""
    assert refused(query="region=eu&limit=&q=") == ["limit", "q"]


@pytest.mark.parametrize(
    "query",
    [
        "region=eu&limit",  # no '='
        "region=eu&&limit=5",  # empty field
        "region=eu&",
        "region=eu&limit=%ZZ",  # malformed escape
        "region=eu&q=%ff%fe",  # not UTF-8
        "&".join(["region=eu"] * (MAX_QUERY_FIELDS + 1)),
    ],
)
def test_a_malformed_query_string_is_refused(query: str) -> None:
    """Strict parsing: name=value fields, valid escapes and UTF-8, a bounded field count."""
    found = violations(query=query)
    assert len(found) == 1
    assert found[0].parameter is None
    assert "query string" in found[0].detail


def test_semicolons_are_not_separators() -> None:
    """'limit=5;admin=1' is one field whose value is not an integer (no ';' smuggling)."""
    assert refused(query="region=eu&limit=5;admin=1") == ["limit"]


def test_plus_and_percent_escapes_are_decoded_before_checking() -> None:
    """'+' is a space and %41 is 'A' in a query value."""
    assert violations(query="region=%65u&q=pump+seal") == []
    assert refused(query="region=eu&limit=%31%30%30%31") == ["limit"]  # 1001


def test_unknown_long_names_are_shortened() -> None:
    """A refused name is echoed at most MAX_ECHO characters."""
    (found,) = violations(query="region=eu&" + "x" * 500 + "=1")
    assert found.parameter is not None
    assert len(found.parameter) == 40


# Types


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0", False),  # minimum 1
        ("1", True),
        ("+7", True),
        ("007", True),
        ("999999999999999999", False),  # 18 digits, above the maximum
        ("1000000000000000000", False),  # 19 digits: not an integer here
        ("1.0", False),
        ("-", False),
        ("1_000", False),
    ],
)
def test_integer_syntax(value: str, ok: bool) -> None:
    """An optional sign and 1-18 ASCII digits, then the bounds."""
    assert (refused({"id": value}) == []) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0", True),
        ("12.50", True),
        ("-0.5", False),  # minimum 0
        ("nan", False),
        ("inf", False),
        ("Infinity", False),
        ("1e3", False),
        (".5", False),
        ("5.", False),
        ("1,5", False),
    ],
)
def test_number_syntax(value: str, ok: bool) -> None:
    """Decimal digits with an optional sign and fraction: no exponent, NaN or infinity."""
    assert (refused(query=f"region=eu&price_min={value}") == []) is ok


@pytest.mark.parametrize(("value", "ok"), [("true", True), ("false", True), ("True", False)])
def test_boolean_syntax(value: str, ok: bool) -> None:
    """Exactly true or false."""
    assert (refused(query=f"region=eu&express={value}") == []) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (UUID, True),
        (UUID.upper(), True),
        (UUID.replace("-", ""), False),
        ("{" + UUID + "}", False),
        (UUID + "0", False),
    ],
)
def test_uuid_format(value: str, ok: bool) -> None:
    """The hyphenated 8-4-4-4-12 form only."""
    assert (refused({"customer": value}) == []) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2025-03-14T09:30:00Z", True),
        ("2025-03-14T09:30:00.123+01:00", True),
        ("2025-03-14T09:30:00", False),  # RFC 3339 needs an offset
        ("2025-03-14 09:30:00Z", False),
        ("2025-13-14T09:30:00Z", False),
    ],
)
def test_date_time_format(value: str, ok: bool) -> None:
    """RFC 3339 §5.6 date-time with an offset, and a real date and time."""
    assert (refused(query=f"region=eu&changed={quote(value)}") == []) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("buyer@example.com", True),
        ("a.b+tag@sub.example.co.uk", True),
        ("buyer@localhost", False),
        ("buyer@example.com\r\nBcc: x@y.z", False),
        ("'or'1'='1@example.com", False),
        ("@example.com", False),
    ],
)
def test_email_format(value: str, ok: bool) -> None:
    """The common address form; quoted or unusual local parts are refused at the boundary."""
    assert (refused(query=f"region=eu&email={quote(value)}") == []) is ok


def test_a_number_enum_accepts_equal_values() -> None:
    """For a number parameter an enum of 2 allows '2' and '2.0'."""
    check = ParamCheck(route(query={"f": {"type": "number", "enum": [2, 2.5]}}))
    check.check({"id": "a"}, "f=2.0")
    check.check({"id": "a"}, "f=2.5")
    with pytest.raises(BodyRefused):
        check.check({"id": "a"}, "f=3")


def test_a_path_parameter_without_a_spec_uses_the_default_pattern() -> None:
    """1-128 unreserved characters (RFC 3986)."""
    check = ParamCheck(route())
    check.check({"id": "A-z_0.9~"}, "")
    for value in ("a" * 129, "a b", "a'b", "é", "a:b"):
        with pytest.raises(BodyRefused) as caught:
            check.check({"id": value}, "")
        assert caught.value.violations[0].parameter == "id"


def test_a_route_without_query_specs_refuses_any_query() -> None:
    """No query parameters listed: none accepted."""
    check = ParamCheck(route())
    check.check({"id": "7"}, "")
    with pytest.raises(BodyRefused):
        check.check({"id": "7"}, "x=1")


def test_max_length_is_enforced_before_the_pattern() -> None:
    """max_length (default 256) bounds the text any pattern sees."""
    check = ParamCheck(route(params={"id": {"pattern": "a+"}}))
    check.check({"id": "a" * 256}, "")
    with pytest.raises(BodyRefused) as caught:
        check.check({"id": "a" * 257}, "")
    assert caught.value.violations[0].detail == "must be at most 256 characters long"


# Exact numbers (issue 18 item 9): the bound is compared with the text that is forwarded.


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("100", True),
        ("100.000000000000000000000", True),
        ("100.00000000000000000001", False),
        ("99.999999999999999999999", True),
        ("0.1", True),
        ("0.09999999999999999999", False),
    ],
)
def test_number_bounds_are_exact(value: str, ok: bool) -> None:
    """As a float, 100.00000000000000000001 is 100.0 and would pass ``maximum: 100``."""
    check = ParamCheck(route(query={"p": {"type": "number", "minimum": 0.1, "maximum": 100}}))
    try:
        check.check({"id": "a"}, f"p={value}")
    except BodyRefused:
        assert not ok
    else:
        assert ok


def test_a_number_enum_is_matched_exactly() -> None:
    """An enum of 0.1 admits '0.1' and '0.10', not a value that merely rounds to 0.1."""
    check = ParamCheck(route(query={"f": {"type": "number", "enum": [0.1]}}))
    check.check({"id": "a"}, "f=0.1")
    check.check({"id": "a"}, "f=0.10")
    with pytest.raises(BodyRefused):
        check.check({"id": "a"}, "f=0.1000000000000000000001")
