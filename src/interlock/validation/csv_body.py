"""CSV request bodies: strict parsing, shape limits and formula-injection neutralisation.

The body must be UTF-8; a leading byte order mark is tolerated and not part
of the first cell. Records are read by the stdlib ``csv`` module with
``strict=True`` and the route's delimiter; every record counts as a row, a
header and blank lines too. Lengths are in characters.

Refusals (:class:`~interlock.validation.errors.BodyRefused`):

* 400 ``malformed-body`` — not UTF-8, a NUL character, or not valid CSV
  (stray or unterminated quotes);
* 413 ``too-many-rows`` — more than ``CsvPolicy.max_rows`` records (reading
  stops at the first one too many);
* 400 ``too-many-columns`` — a record with more than ``max_columns`` fields;
* 400 ``field-too-long`` — a field longer than ``max_field_length`` (or than
  the process-wide ``csv.field_size_limit()``, 131072 by default, if that is
  smaller).

Formula injection (OWASP "CSV Injection"): with ``neutralise_formulas`` a cell
is prefixed with ``'`` when it starts with TAB or CR, or when its first
character after any leading whitespace and double quotes is ``=``, ``+``,
``-`` or ``@`` — spreadsheets skip such lead-ins (`` =1+1``, ``"=1+1``) and
would still run the formula. Negative numbers (``-5``) and signed values
(``+49 30 1234``) are prefixed too: the price of a rule with no exceptions for
an attacker to shape a payload into. A target that needs them as numbers
should take another format or a route with ``neutralise_formulas: false``.

The dialect is not trusted either. The route declares one delimiter, but the
spreadsheet that opens the file may split on another: ``;`` in German
locales, TAB for pasted text, ``|`` for some exports. A body written with
``;`` on a ``,`` route is one cell per line to us (``SKU-1;=HYPERLINK(...)``)
and two to Excel. So inside every cell, wherever another dialect would start
a field — after ``,``, ``;``, TAB, ``|`` or a line break, then any whitespace
and quotes — a formula character gets a ``'`` in front of it
(``SKU-1;'=HYPERLINK(...)``). No position in the forwarded text where any of
these dialects starts a field is followed by a formula. We chose this over
refusing bodies that "look like" another dialect: it needs no guess about
what a dialect looks like, and a lone ``;`` in a text cell stays legal.
The neutralised CSV is always re-serialised — same delimiter, minimal quoting,
``\\r\\n`` line ends (RFC 4180 §2), UTF-8 without BOM — so the target receives
exactly the records that were checked. Without neutralisation the body is
passed on byte for byte.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from interlock.config.manifest import CsvPolicy
from interlock.validation.errors import BodyRefused

__all__ = ["CsvResult", "check_csv", "neutralise_formulas"]

# OWASP CSV Injection: = + - @ start a formula, TAB and CR are stripped by some
# spreadsheets before they look; leading whitespace and quotes are skipped too.
_FORMULA: Final = re.compile(r"[\t\r]|[\s\"]*[=+\-@]")
# A field start in some other dialect inside a cell: a common separator or a line
# break, whitespace and quotes, then a formula character (the ' goes before it).
_FOREIGN_FORMULA: Final = re.compile(r"([,;\t|\r\n][\s\"]*)(?=[=+\-@])")


@dataclass(frozen=True)
class CsvResult:
    """A checked CSV body: what to forward, how many rows, how many cells were prefixed."""

    body: bytes
    rows: int
    neutralised: int


def check_csv(body: bytes, policy: CsvPolicy) -> CsvResult:
    """``body`` checked against ``policy`` and, if it says so, neutralised.

    Raises :class:`BodyRefused` as listed in the module docstring.
    """
    text = _text(body)
    if not policy.neutralise_formulas:
        rows = sum(1 for _ in _records(text, policy))
        return CsvResult(body, rows, 0)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=policy.delimiter, lineterminator="\r\n")
    rows = neutralised = 0
    for record in _records(text, policy):
        rows += 1
        cells = [neutralise_formulas(cell) for cell in record]
        neutralised += sum(cell != original for cell, original in zip(cells, record, strict=True))
        writer.writerow(cells)
    return CsvResult(out.getvalue().encode(), rows, neutralised)


def neutralise_formulas(cell: str) -> str:
    """``cell`` with a ``'`` before every formula a spreadsheet of any common dialect would see.

    For every CSV Interlock writes or forwards: request bodies here, the Art. 30
    register (:mod:`interlock.privacy.ropa_render`).
    """
    inside = _FOREIGN_FORMULA.sub(r"\1'", cell) if _has_separator(cell) else cell
    return "'" + inside if _FORMULA.match(inside) is not None else inside


def _has_separator(cell: str) -> bool:
    # Most cells hold no separator: skip the regular expression for them.
    return any(mark in cell for mark in ",;\t|\r\n")


def _text(body: bytes) -> str:
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise BodyRefused("malformed-body", f"not UTF-8 at byte {error.start}") from None
    if "\0" in text:
        raise BodyRefused("malformed-body", "NUL characters are not accepted")
    return text


def _records(text: str, policy: CsvPolicy) -> Iterator[list[str]]:
    """Each record of ``text``, refusing as soon as a limit is passed."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=policy.delimiter, strict=True)
    rows = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            # The csv module's own cap (csv.field_size_limit) has no error type of its own.
            if "field larger than field limit" in str(error):
                raise _field_too_long(rows + 1, policy.max_field_length) from None
            detail = f"not valid CSV at line {reader.line_num}"
            raise BodyRefused("malformed-body", detail) from None
        rows += 1
        if rows > policy.max_rows:
            detail = f"more than {policy.max_rows} rows"
            raise BodyRefused("too-many-rows", detail)
        if len(record) > policy.max_columns:
            detail = f"row {rows} has {len(record)} columns; at most {policy.max_columns}"
            raise BodyRefused("too-many-columns", detail)
        if any(len(cell) > policy.max_field_length for cell in record):
            raise _field_too_long(rows, policy.max_field_length)
        yield record


def _field_too_long(row: int, limit: int) -> BodyRefused:
    detail = f"row {row} has a field longer than {limit} characters"
    return BodyRefused("field-too-long", detail)
