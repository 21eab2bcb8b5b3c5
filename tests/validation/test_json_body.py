"""Strict JSON parsing: hostile bodies are refused with a 400, a stable code and a pointer."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.config.manifest import JsonLimits
from interlock.gateway.problems import REFUSALS
from interlock.validation.errors import MAX_ECHO, BodyRefused
from interlock.validation.json_body import _CANDIDATES, _plan, parse_json

DEFAULT = JsonLimits()
SMALL = JsonLimits(max_depth=4, max_string_length=10, max_number_length=8, max_members=3)


def refusal(body: bytes, limits: JsonLimits = DEFAULT) -> BodyRefused:
    """The refusal of ``body``; fails the test if it is accepted."""
    with pytest.raises(BodyRefused) as caught:
        parse_json(body, limits)
    assert REFUSALS[caught.value.code].status == 400
    assert len(caught.value.violations) == 1
    return caught.value


def located(body: bytes, limits: JsonLimits = DEFAULT) -> tuple[str, str | None]:
    """The code and pointer of the refusal of ``body``."""
    exc = refusal(body, limits)
    return exc.code, exc.violations[0].pointer


def test_a_valid_body_parses_to_its_value() -> None:
    """Objects, arrays, strings, integers, floats, booleans and null come through unchanged."""
    body = b'{"a": [1, -2.5, "x", true, false, null], "b": {"c": "\\u00e9\\ud83d\\ude00"}}'
    assert parse_json(body, DEFAULT) == {
        "a": [1, -2.5, "x", True, False, None],
        "b": {"c": "é😀"},
    }


@pytest.mark.parametrize("body", [b"1", b'"text"', b"null", b"[]", b"{}", b" \n[1]\t "])
def test_any_json_value_with_whitespace_is_accepted(body: bytes) -> None:
    """A top-level scalar or an empty container is JSON (RFC 8259 §2); the schema decides."""
    assert parse_json(body, DEFAULT) == json.loads(body)


# Encoding


def test_invalid_utf8_is_refused_as_invalid_encoding() -> None:
    """A byte that is not UTF-8 is refused with its offset, before any parsing."""
    exc = refusal(b'{"name": "caf\xe9"}')
    assert (exc.code, exc.violations[0].pointer) == ("invalid-encoding", "#")
    assert "at byte 13" in exc.detail


def test_utf16_is_refused_not_detected() -> None:
    """json.loads(bytes) would guess UTF-16; a boundary accepts UTF-8 only (RFC 8259 §8.1)."""
    assert located('{"a": 1}'.encode("utf-16")) == ("invalid-encoding", "#")
    assert located('{"a": 1}'.encode("utf-32")) == ("invalid-encoding", "#")
    # Without a BOM, UTF-16 of ASCII text is valid UTF-8 with NULs in it: not JSON.
    assert located('{"a": 1}'.encode("utf-16-le")) == ("malformed-body", "#")


def test_a_byte_order_mark_is_refused() -> None:
    """RFC 8259 §8.1: implementations MUST NOT add a BOM; we do not accept one."""
    exc = refusal(b'\xef\xbb\xbf{"a": 1}')
    assert exc.code == "invalid-encoding"
    assert "byte order mark" in exc.detail


def test_overlong_utf8_encoding_is_refused() -> None:
    """An overlong encoding of '/' (0xC0 0xAF) is the classic filter bypass."""
    assert located(b'{"path": "..\xc0\xaf.."}')[0] == "invalid-encoding"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'["ok", "\\ud800"]', "#/1"),
        (b'{"a": {"b": "x\\udfff"}}', "#/a/b"),
        (b'"\\uDC00"', "#"),
        (b'{"a": "\\ude00\\ud83d"}', "#/a"),  # the halves in the wrong order
    ],
)
def test_lone_surrogate_escapes_are_refused_at_their_pointer(body: bytes, where: str) -> None:
    """A \\ud800-style escape without its partner is no character; UTF-8 cannot carry it."""
    assert located(body) == ("invalid-encoding", where)


def test_a_lone_surrogate_in_a_key_points_at_its_object() -> None:
    """The key cannot go into a pointer (it is not text), so the object is named."""
    assert located(b'{"a": {"\\ud800": 1}}') == ("invalid-encoding", "#/a")


def test_an_escaped_backslash_before_u_is_not_a_surrogate() -> None:
    """'\\\\ud800' is a backslash and the letters 'ud800': valid text."""
    assert parse_json(b'["\\\\ud800"]', DEFAULT) == ["\\ud800"]


# Syntax


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"a": 1,}', b"[1, 2", b"{'a': 1}", b'{"a": 1} {}', b'["\x01"]', b"tru"],
)
def test_malformed_json_is_refused_with_line_and_column(body: bytes) -> None:
    """Not JSON: 400 malformed-body, pointing at the whole body, naming where it broke."""
    exc = refusal(body)
    assert (exc.code, exc.violations[0].pointer) == ("malformed-body", "#")
    assert "line 1 column" in exc.detail


@pytest.mark.parametrize(
    ("body", "where", "name"),
    [
        (b"[NaN]", "#/0", "NaN"),
        (b'{"x": [1, Infinity]}', "#/x/1", "Infinity"),
        (b'{"x": -Infinity}', "#/x", "-Infinity"),
    ],
)
def test_nan_and_infinity_are_refused(body: bytes, where: str, name: str) -> None:
    """Python's parser accepts them; JSON has no such numbers (RFC 8259 §6)."""
    exc = refusal(body)
    assert (exc.code, exc.violations[0].pointer) == ("malformed-body", where)
    assert name in exc.detail


@pytest.mark.parametrize(
    "body",
    [b'{"a": 1, "a": 2} x', b'{"a": 1, "a": 2', b"[NaN, ", b'[1, {"b": 1, "b": 2}] ]'],
)
def test_a_syntax_error_after_another_problem_is_still_a_400(body: bytes) -> None:
    """A hook fires before the parser reaches the syntax error: still malformed-body, no 500."""
    assert located(body) == ("malformed-body", "#")


# Duplicate keys


def test_a_duplicate_key_is_refused_at_its_pointer() -> None:
    """{"qty": 1, "qty": 1000}: one reader takes the first, another the last; we take neither."""
    exc = refusal(b'{"lines": [{"qty": 1, "sku": "A", "qty": 1000}]}')
    assert (exc.code, exc.violations[0].pointer) == ("duplicate-key", "#/lines/0/qty")


def test_a_duplicate_key_at_the_top_level_is_refused() -> None:
    """The same check applies at any depth, including the root."""
    assert located(b'{"role": "user", "role": "admin"}') == ("duplicate-key", "#/role")


def test_keys_that_differ_only_by_escaping_are_duplicates() -> None:
    """ "a" and "\\u0061" are the same key once decoded."""
    assert located(b'{"a": 1, "\\u0061": 2}') == ("duplicate-key", "#/a")


def test_a_duplicate_key_pointer_escapes_slash_and_tilde() -> None:
    """RFC 6901: '/' becomes ~1 and '~' becomes ~0 in the pointer."""
    assert located(b'{"a/b~c": 1, "a/b~c": 2}') == ("duplicate-key", "#/a~1b~0c")


def test_the_first_problem_in_document_order_is_reported() -> None:
    """Hooks run innermost first; the report still names the earliest problem in the text."""
    assert located(b'{"a": {"x": 1, "x": 2}, "b": NaN}') == ("duplicate-key", "#/a/x")
    assert located(b'{"a": NaN, "b": {"x": 1, "x": 2}}') == ("malformed-body", "#/a")


# Numbers


@pytest.mark.parametrize("literal", [b"1e999999", b"-1e999999", b"1.8e308", b"1E+400"])
def test_a_number_that_overflows_a_double_is_refused(literal: bytes) -> None:
    """1e999999 would silently become inf, which no JSON encoder can write back."""
    exc = refusal(b'{"amount": ' + literal + b"}")
    assert (exc.code, exc.violations[0].pointer) == ("json-limit-exceeded", "#/amount")
    assert "out of range" in exc.detail


def test_the_largest_double_is_accepted() -> None:
    """1.7976931348623157e308 is finite: only overflow is refused, not large numbers.

    1e-999 underflows a double to 0.0; it is kept as the exact Decimal instead
    (issue 18 item 9), so that ``maximum: 0`` sees it is above zero.
    """
    assert parse_json(b"[1.7976931348623157e308, 1e-999]", DEFAULT) == [
        1.7976931348623157e308,
        Decimal("1E-999"),
    ]


@pytest.mark.parametrize(
    "literal",
    [
        "1000.00000000000000000001",
        "999.99999999999999999",
        "9007199254740993.0",
        "0.30000000000000001",
        "1e-400",
        "-2.5e-324",
    ],
)
def test_a_number_a_double_cannot_carry_is_parsed_exactly(literal: str) -> None:
    """Issue 18 item 9: the value checked is the value written, not the nearest double."""
    (value,) = parse_json(f"[{literal}]".encode(), DEFAULT)
    assert isinstance(value, Decimal)
    assert value == Decimal(literal)


@pytest.mark.parametrize(
    "literal", ["0.1", "1.50", "1e-5", "-0.0", "123456789012345.6", "1.7976931348623157e308"]
)
def test_a_number_a_double_carries_stays_a_float(literal: str) -> None:
    """The common case keeps float (cheap); only inexact literals become Decimal."""
    (value,) = parse_json(f"[{literal}]".encode(), DEFAULT)
    assert type(value) is float
    assert Decimal(repr(value)) == Decimal(literal)


def test_integers_beyond_two_to_the_53_stay_exact() -> None:
    """An integer literal is a Python int at any size (within max_number_length)."""
    assert parse_json(b"[9007199254740993, -9007199254740993]", DEFAULT) == [
        2**53 + 1,
        -(2**53) - 1,
    ]


def _exact(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


@given(
    st.decimals(
        min_value=Decimal("-1e30"), max_value=Decimal("1e30"), allow_nan=False, allow_infinity=False
    )
    .map(str)
    .filter(lambda text: len(text) <= DEFAULT.max_number_length)
)
def test_every_number_literal_is_parsed_to_its_exact_value(literal: str) -> None:
    """Whatever the digits and exponent, the parsed number equals the literal exactly."""
    (value,) = parse_json(f"[{literal}]".encode(), DEFAULT)
    assert _exact(value) == Decimal(literal)


def test_a_huge_integer_is_refused_before_conversion() -> None:
    """A 5000-digit integer: int() is quadratic (CVE-2020-10735); the literal length stops it."""
    exc = refusal(b'{"id": ' + b"9" * 5000 + b"}")
    assert (exc.code, exc.violations[0].pointer) == ("json-limit-exceeded", "#/id")
    assert "more than 40 characters" in exc.detail


@pytest.mark.parametrize(
    ("literal", "accepted"),
    [
        (b"12345678", True),
        (b"-1234567", True),
        (b"123456789", False),
        (b"-12345678", False),
        (b"1.234567", True),
        (b"1.2345678", False),
        (b"1.5e+300", True),
        (b"1.25e+300", False),
    ],
)
def test_number_literal_length_counts_every_character(literal: bytes, accepted: bool) -> None:
    """max_number_length (8 here) counts the sign, the point and the exponent."""
    body = b"[" + literal + b"]"
    if accepted:
        assert parse_json(body, SMALL) == json.loads(body)
    else:
        assert located(body, SMALL) == ("json-limit-exceeded", "#/0")


def test_long_digit_strings_inside_strings_are_not_numbers() -> None:
    """A long reference number in a string is text: only the cautious pre-check notices it."""
    body = json.dumps({"ref": "9" * 100, "exp": "e999", "n": 12}).encode()
    assert parse_json(body, DEFAULT) == {"ref": "9" * 100, "exp": "e999", "n": 12}


UUID_LIKE = "6513270e-269e-4d37-b2a7-4de452e63f1a"  # "0e-269" reads like an exponent


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "' + UUID_LIKE.encode() + b'", "amount": 1e400}',
        b'{"id": "' + UUID_LIKE.encode() + b'", "amount":\n\t-1E+400}',
        b'["' + UUID_LIKE.encode() + b'",1e400]',
        b'{"ref": "' + b"9" * 40 + b'", "amount": [1e400]}',
    ],
)
def test_an_overflow_after_number_like_text_in_strings_is_still_refused(body: bytes) -> None:
    """Digits and exponents inside strings no longer force the careful decoder (a UUID's
    "0e-269" is text), but a real number after them is still checked."""
    exc = refusal(body)
    assert exc.code == "json-limit-exceeded"
    assert "out of range" in exc.detail


def test_an_inexact_number_after_number_like_text_is_still_exact() -> None:
    """The same for precision: the literal a double cannot carry stays a Decimal."""
    body = json.dumps({"id": UUID_LIKE, "digest": "1234567890" * 4}).encode()
    value = parse_json(body[:-1] + b', "n": 0.30000000000000001, "tiny": 1e-400}', DEFAULT)
    assert value["n"] == Decimal("0.30000000000000001")
    assert value["tiny"] == Decimal("1e-400")


def test_number_like_text_in_strings_takes_the_fast_decoder() -> None:
    """A UUID, a hex digest or a long reference in a string costs no number hooks; a real
    long number, a top-level one, or more runs than are classified keep the careful one."""
    plan = _plan(DEFAULT)
    text_only = {"id": UUID_LIKE, "sha": "0e12345e678" * 6, "ref": "9" * 30, "n": 1.5}
    assert not plan.risky_numbers(json.dumps(text_only).encode())
    assert plan.risky_numbers(json.dumps({"id": UUID_LIKE, "n": 1.25e-30}).encode())
    assert plan.risky_numbers(b'{"n": 12345678901234567.5}')
    assert plan.risky_numbers(b"1e400")
    assert plan.risky_numbers(b'"x" 1e400')  # cautious about what is not even JSON
    many = json.dumps([f"{n}e-{n:03}" for n in range(_CANDIDATES + 1)]).encode()
    assert plan.risky_numbers(many)


@given(
    st.lists(st.text(alphabet="0123456789eE+-.abcdef", max_size=24), max_size=6),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
def test_any_text_before_a_number_leaves_its_value_exact(texts: list[str], literal: str) -> None:
    """Whatever number-like text comes first, the number parses to its exact value or is
    refused as too long or out of range, as it would be alone."""
    body = (json.dumps(texts)[:-1] + ("," if texts else "") + literal + "]").encode()
    code: str | None = None
    try:
        alone = parse_json(f"[{literal}]".encode(), DEFAULT)
    except BodyRefused as refused:
        code = refused.code
    if code is not None:
        assert located(body)[0] == code
        return
    value = parse_json(body, DEFAULT)
    assert value[:-1] == texts
    assert _exact(value[-1]) == _exact(alone[0])


def test_a_long_number_limit_still_catches_overflow_without_exponent() -> None:
    """With a 4300-character limit, 400 nines overflow a double: refused as out of range."""
    limits = JsonLimits(max_number_length=4300)
    exc = refusal(b"[" + b"9" * 400 + b".0]", limits)
    assert "out of range" in exc.detail
    assert parse_json(b"[" + b"9" * 400 + b"]", limits) == [int("9" * 400)]


def test_the_interpreters_digit_limit_becomes_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    """With int max-str-digits lowered below the limit, int() raises ValueError: still a 400."""
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        exc = refusal(b"[" + b"9" * 700 + b"]", JsonLimits(max_number_length=1000))
    finally:
        sys.set_int_max_str_digits(previous)
    assert (exc.code, exc.violations[0].pointer) == ("json-limit-exceeded", "#/0")


# Structure limits


def nested(depth: int) -> bytes:
    """``depth`` arrays, one inside the other."""
    return b"[" * depth + b"]" * depth


def test_nesting_up_to_max_depth_is_accepted() -> None:
    """max_depth 4 allows four levels of containers."""
    assert parse_json(nested(4), SMALL) == [[[[]]]]
    assert parse_json(b'{"a": {"b": {"c": [1]}}}', SMALL) == {"a": {"b": {"c": [1]}}}


def test_nesting_beyond_max_depth_points_at_the_first_container_too_deep() -> None:
    """The fifth level is refused at its own pointer."""
    assert located(nested(5), SMALL) == ("json-limit-exceeded", "#/0/0/0/0")
    assert located(b'{"a": {"b": {"c": {"d": {}}}}}', SMALL) == (
        "json-limit-exceeded",
        "#/a/b/c/d",
    )


def test_the_default_depth_of_32_is_enforced() -> None:
    """33 levels exceed the default limit."""
    assert parse_json(nested(32), DEFAULT) is not None
    code, where = located(nested(33), DEFAULT)
    assert code == "json-limit-exceeded"
    assert where == "#" + "/0" * 32


@pytest.mark.parametrize("depth", [600, 5000, 100_000])
def test_absurd_nesting_is_a_clean_depth_refusal(depth: int) -> None:
    """100 000 '[' exhaust the C parser's stack: RecursionError becomes the same 400, never a 500."""
    exc = refusal(b"[" * depth + b"]" * depth)
    assert exc.code == "json-limit-exceeded"
    assert "nested deeper than 32 levels" in exc.detail


def test_unterminated_absurd_nesting_is_refused() -> None:
    """100 000 '[' with no closing brackets: refused, whichever problem is found first."""
    assert refusal(b"[" * 100_000).code in {"json-limit-exceeded", "malformed-body"}


def test_a_long_string_is_refused_at_its_pointer() -> None:
    """max_string_length 10: eleven characters are too many."""
    assert parse_json(b'{"a": "0123456789"}', SMALL) == {"a": "0123456789"}
    assert located(b'{"a": ["x", "01234567890"]}', SMALL) == ("json-limit-exceeded", "#/a/1")


def test_string_length_counts_characters_not_bytes_or_escapes() -> None:
    """Ten 'é' (20 bytes) or ten escapes (60 bytes) are ten characters."""
    assert parse_json(('["' + "é" * 10 + '"]').encode(), SMALL) == ["é" * 10]
    assert parse_json(b'["' + b"\\u00e9" * 10 + b'"]', SMALL) == ["é" * 10]


def test_a_long_key_is_refused_at_its_object() -> None:
    """Keys are strings too; the pointer names the object holding the key."""
    assert located(b'{"a": {"01234567890": 1}}', SMALL) == ("json-limit-exceeded", "#/a")


def test_a_long_root_string_is_refused() -> None:
    """The body itself can be the string."""
    assert located(b'"01234567890"', SMALL) == ("json-limit-exceeded", "#")


def test_too_many_members_are_refused() -> None:
    """max_members 3: a fourth member or item is refused at its container."""
    assert located(b'{"a": {"w": 1, "x": 2, "y": 3, "z": 4}}', SMALL) == (
        "json-limit-exceeded",
        "#/a",
    )
    assert located(b'{"a": [[1, 2, 3, 4]]}', SMALL) == ("json-limit-exceeded", "#/a/0")
    assert parse_json(b"[1, 2, 3]", SMALL) == [1, 2, 3]


def test_the_default_string_and_member_limits_hold_for_large_bodies() -> None:
    """Bodies large enough to need the structure check: 65 537 characters, 10 001 items."""
    assert located(json.dumps({"s": "x" * 65537}).encode()) == ("json-limit-exceeded", "#/s")
    assert located(json.dumps({"a": list(range(10001))}).encode()) == (
        "json-limit-exceeded",
        "#/a",
    )
    big = {"s": "x" * 65536, "a": list(range(10000))}
    assert parse_json(json.dumps(big).encode(), DEFAULT) == big


# Error hygiene


def test_details_never_echo_the_value() -> None:
    """A refusal names the rule and the place, not the (possibly secret or hostile) content."""
    secret = "sk_live_" + "A" * 200
    body = json.dumps({"token": secret, "token2": 1}).replace("token2", "token").encode()
    exc = refusal(body)
    text = exc.detail + "".join(v.detail for v in exc.violations)
    assert secret[:12] not in text


def test_long_pointers_are_shortened_in_the_detail() -> None:
    """The detail quotes at most MAX_ECHO characters of a pointer; the violation has it whole."""
    key = "k" * 200
    exc = refusal(json.dumps({key: {"x": 1}}).encode()[:-2] + b', "x": 2}}')
    assert exc.violations[0].pointer == f"#/{key}/x"
    assert key not in exc.detail
    assert len(exc.detail) < 60 + MAX_ECHO


# Round trips


def json_values() -> st.SearchStrategy[Any]:
    """JSON values within the default limits (no NaN, no lone surrogates)."""
    text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(10**30), 10**30)
        | st.floats(allow_nan=False, allow_infinity=False)
        | text
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5)
        ),
        max_leaves=30,
    )


def encodings(value: Any) -> Iterator[bytes]:
    """The value as compact ASCII JSON and as indented UTF-8 JSON."""
    yield json.dumps(value).encode()
    yield json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")


@given(json_values())
def test_any_json_within_limits_round_trips(value: Any) -> None:
    """Whatever json.dumps writes (within the limits) parses back to an equal value."""
    for body in encodings(value):
        assert parse_json(body, DEFAULT) == value


@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_or_are_refused_with_a_known_code(body: bytes) -> None:
    """No input raises anything but BodyRefused with one of the four codes."""
    codes = {"invalid-encoding", "malformed-body", "duplicate-key", "json-limit-exceeded"}
    code = None
    try:
        parse_json(body, SMALL)
    except BodyRefused as exc:
        code = exc.code
    assert code is None or code in codes


TOKENS = ["{", "}", "[", "]", '"a"', '"b"', ":", ",", "1", "-0.5", "NaN", "1e999", '"\\ud800"']


@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_token_soup_never_escapes_as_another_exception(text: str) -> None:
    """Near-JSON built from hostile tokens: accepted, or refused with a known code."""
    codes = {"invalid-encoding", "malformed-body", "duplicate-key", "json-limit-exceeded"}
    code = None
    try:
        parse_json(text.encode(), SMALL)
    except BodyRefused as exc:
        code = exc.code
    assert code is None or code in codes
