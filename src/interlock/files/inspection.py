"""What a received file is, by its bytes alone, and whether it is what the integration declared.

Nothing here trusts the file's name: ``orders.csv`` holding a ZIP archive or
a JSON document is refused as what it is. :func:`sniff` looks at the first
bytes only; :func:`check_content` then runs the integration's format through
the gateway's own validators (:mod:`interlock.validation`):

* **csv** — :func:`~interlock.validation.csv_body.check_csv` (strict quoting,
  row, column and field caps, no NUL). A file is all or nothing: a cell a
  spreadsheet would run as a formula (OWASP CSV Injection: ``=``, ``+``,
  ``-``, ``@``, TAB or CR first, also after another dialect's separator)
  refuses the whole file — the file in processing is byte for byte what the
  partner sent, so it cannot be neutralised in place. A plain signed number
  (``-12.50``, ``+3``) is not a formula and passes. With ``csv_columns`` the
  first row must be exactly that header and every row must have as many cells.
* **xml** — :func:`~interlock.validation.xml_body.parse_xml`: defusedxml, any
  DOCTYPE refused (XXE, billion laughs, external DTDs), a depth cap, and the
  integration's XSD when it names one.
* **json** — :func:`~interlock.validation.json_body.parse_json` (duplicate
  keys, depth, sizes, NaN refused) and the integration's JSON Schema.
* **edi** — an X12 (``ISA``) or EDIFACT (``UNA``/``UNB``) interchange; its
  messages (``ST``/``UNH`` segments) are counted, not validated further.
* **binary** — nothing to interpret: any content is taken as is.

Encodings are decoded strictly. A UTF-8 byte order mark is tolerated in front
of CSV and XML (as the validators do) but refused in front of JSON (RFC 8259
§8.1) and in a file declared latin-1 (it says the file is really UTF-8). A
latin-1 XML file's declaration of its encoding is made to say UTF-8 with the
conversion; a declaration of any other encoding is refused by the validator.
Reasons name rules, line numbers and pointers — never the file's content
beyond what :func:`~interlock.validation.errors.echo` allows for a key.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from interlock.config.files import FilesSpec
from interlock.config.manifest import CsvPolicy, JsonLimits, XmlPolicy
from interlock.validation.csv_body import check_csv, neutralise_formulas
from interlock.validation.errors import BodyRefused
from interlock.validation.json_body import parse_json
from interlock.validation.schema import RequestSchema
from interlock.validation.xml_body import XsdSchema, parse_xml

__all__ = ["Detected", "Findings", "check_content", "sniff"]

Detected = Literal["csv", "xml", "json", "edi", "binary", "text"]
"""What a file's bytes are."""

_SNIFF: Final = 4096
_BOM: Final = b"\xef\xbb\xbf"
# Magic numbers of common binary containers (ZIP/Office, PDF, gzip, ELF, PE, PNG, JPEG).
_MAGIC: Final = (b"PK\x03\x04", b"%PDF", b"\x1f\x8b", b"\x7fELF", b"MZ", b"\x89PNG", b"\xff\xd8")
_NUMBER: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_SEPARATORS: Final = ",;\t|"
_MAX_VIOLATIONS_SHOWN: Final = 5
# XML 1.0 §2.8, §4.3.3: the declaration opens the document; version, then encoding.
_XML_ENCODING: Final = re.compile(
    r"""<\?xml\s+version\s*=\s*(?:"[^"]*"|'[^']*')\s+encoding\s*=\s*(["'])([A-Za-z][\w.-]*)\1"""
)


@dataclass(frozen=True)
class Findings:
    """What :func:`check_content` found: the reasons to refuse (none: fine) and the record count."""

    reasons: tuple[str, ...]
    records: int


def sniff(data: bytes) -> Detected:
    """What ``data`` is, from its first bytes; the file's name plays no part.

    Binary: a known container's magic number or a NUL byte. Otherwise, after
    a UTF-8 BOM and whitespace: ``{``/``[`` is json, ``<`` xml, ``ISA``,
    ``UNA`` or ``UNB`` edi; a first line holding ``,``, ``;``, TAB or ``|``
    is csv; anything else is text.
    """
    head = data[:_SNIFF]
    if head.startswith(_MAGIC) or b"\0" in head:
        return "binary"
    start = head.removeprefix(_BOM).lstrip()
    if start[:1] in (b"{", b"["):
        return "json"
    if start[:1] == b"<":
        return "xml"
    if start[:3] in (b"ISA", b"UNA", b"UNB"):
        return "edi"
    first_line = start.split(b"\n", 1)[0].decode("latin-1")
    if any(mark in first_line for mark in _SEPARATORS):
        return "csv"
    return "text"


def check_content(
    data: bytes,
    spec: FilesSpec,
    *,
    json_schema: RequestSchema | None = None,
    xsd: XsdSchema | None = None,
) -> Findings:
    """Type, encoding and format of ``data`` against ``spec``; never raises for bad content."""
    detected = sniff(data)
    if spec.format == "binary":
        return Findings((), 0)
    if not _fits(detected, spec.format):
        return Findings((f"the content is {detected}, not {spec.format} as declared",), 0)
    text, problem = _decode(data, spec)
    if problem is not None:
        return Findings((problem,), 0)
    try:
        return _format(text.encode("utf-8"), text, spec, json_schema, xsd)
    except BodyRefused as refusal:
        return Findings((_describe(refusal),), 0)


def _format(
    utf8: bytes,
    text: str,
    spec: FilesSpec,
    json_schema: RequestSchema | None,
    xsd: XsdSchema | None,
) -> Findings:
    """The format's own checks; ``utf8`` is the decoded text in UTF-8, what the validators read."""
    if spec.format == "csv":
        return _csv(utf8, text, spec.csv_columns)
    if spec.format == "xml":
        return Findings((), len(parse_xml(utf8, XmlPolicy(), xsd)))
    if spec.format == "json":
        return _json(utf8, json_schema)
    return _edi(text)


def _fits(detected: Detected, declared: str) -> bool:
    # A CSV of one column has no separator to sniff: plain text is a CSV too.
    return detected == declared or (declared == "csv" and detected == "text")


def _decode(data: bytes, spec: FilesSpec) -> tuple[str, str | None]:
    if spec.encoding == "latin-1":
        if data.startswith(_BOM):
            return "", "starts with a UTF-8 byte order mark but latin-1 is declared"
        text = data.decode("latin-1")
        if spec.format == "xml":
            text = _declared_utf8(text)
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            return "", f"not valid UTF-8 at byte {error.start}"
        if text.startswith("\ufeff"):
            if spec.format == "json":
                return "", "starts with a byte order mark, which JSON forbids (RFC 8259 §8.1)"
            text = text[1:]
    if "\0" in text:
        return "", "contains NUL characters"
    return text, None


def _declared_utf8(text: str) -> str:
    """Latin-1 XML text, converted, declaring UTF-8 where it declared latin-1.

    XML 1.0 §4.3.3 requires a latin-1 document to declare its encoding; once the
    text is UTF-8 that declaration would be false, and the XML validator refuses
    any but UTF-8. A declaration naming another encoding is left for it to refuse.
    """
    found = _XML_ENCODING.match(text)
    if found is None:
        return text
    try:
        latin = codecs.lookup(found.group(2)).name == "iso8859-1"
    except LookupError:
        latin = False
    return text[: found.start(2)] + "UTF-8" + text[found.end(2) :] if latin else text


def _csv(utf8: bytes, text: str, columns: Sequence[str]) -> Findings:
    """The validators' CSV checks, then header, row widths and formula cells in one pass."""
    policy = CsvPolicy(neutralise_formulas=False)
    check_csv(utf8, policy)  # strictness and the row, column and field caps; raises BodyRefused
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=policy.delimiter, strict=True)
    reasons: list[str] = []
    records = formulas = 0
    first_formula: tuple[int, int] | None = None
    ragged: str | None = None
    for number, row in enumerate(reader, start=1):
        if number == 1 and columns and tuple(row) != tuple(columns):
            reasons.append(f"the first row is not the declared header ({', '.join(columns)})")
        elif row and columns and len(row) != len(columns) and ragged is None:
            ragged = f"row {number} has {len(row)} cells; the header has {len(columns)}"
        records += 1 if row and (number > 1 or not columns) else 0
        for column, cell in enumerate(row, start=1):
            if _formula(cell):
                formulas += 1
                first_formula = first_formula or (number, column)
    if ragged is not None:
        reasons.append(ragged)
    if first_formula is not None:
        line, column = first_formula
        reasons.append(
            f"{formulas} cell(s) would run as a spreadsheet formula "
            f"(CSV injection; the first at row {line}, column {column})"
        )
    if columns and not text:
        reasons.append(f"the file is empty; the header ({', '.join(columns)}) is missing")
    return Findings(tuple(reasons), records)


def _formula(cell: str) -> bool:
    return neutralise_formulas(cell) != cell and _NUMBER.fullmatch(cell) is None


def _json(utf8: bytes, schema: RequestSchema | None) -> Findings:
    value: Any = parse_json(utf8, JsonLimits())
    if schema is not None:
        schema.check(value)
    return Findings((), len(value) if isinstance(value, list) else 1)


def _edi(text: str) -> Findings:
    start = text.lstrip()
    if start.startswith("ISA"):
        if len(start) < 106:
            return Findings(("an X12 interchange too short for its ISA header",), 0)
        terminator, opener = start[105], "ST"
        element = start[3]
    else:
        # EDIFACT: UNA declares the service characters (element separator 4th,
        # terminator 6th after "UNA"); the defaults are + and '.
        declared = start.startswith("UNA") and len(start) > 8
        terminator = start[8] if declared else "'"
        element = start[4] if declared else "+"
        opener = "UNH"
    segments = [segment.strip() for segment in start.split(terminator)]
    count = sum(1 for segment in segments if segment.startswith(opener + element))
    if count == 0:
        return Findings(("an EDI interchange without any message",), 0)
    return Findings((), count)


def _describe(refusal: BodyRefused) -> str:
    """The validator's refusal as one reason: its code, detail and the first few locations."""
    parts = [f"{refusal.code}: {refusal.detail}"]
    for violation in refusal.violations[:_MAX_VIOLATIONS_SHOWN]:
        where = violation.pointer or violation.parameter or ""
        parts.append(f"{where} {violation.detail}".strip())
    return "; ".join(parts)
