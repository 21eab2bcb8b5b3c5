"""Reading the values at subject locators out of JSON, CSV and XML bodies.

For :mod:`interlock.privacy.subjects`. A body that cannot be read raises
:class:`Unreadable` (its locators are counted as unparsed); values are
yielded as found, never logged.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any
from xml.etree.ElementTree import Element

from interlock.config.manifest import XmlPolicy
from interlock.validation.csv_body import neutralise_formulas
from interlock.validation.errors import BodyRefused

__all__ = ["Unreadable", "csv_cells", "json_document", "xml_root", "xml_texts"]


class Unreadable(Exception):  # noqa: N818  (a condition, not a fault: the body is data)
    """The body is not what its media type says (malformed, not UTF-8, a DTD)."""


def json_document(body: bytes) -> Any:
    """``body`` parsed as JSON (UTF-8, a byte order mark tolerated)."""
    try:
        return json.loads(body.decode("utf-8").removeprefix("\ufeff"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise Unreadable from None


def csv_cells(
    body: bytes, delimiter: str, columns: Sequence[str], *, strip: bool
) -> Iterator[tuple[int, str]]:
    """``(i, cell)`` for each non-empty cell of the column named ``columns[i]``, row by row.

    The first record is the header (a column name's first occurrence counts).
    ``strip``: remove the ``'`` the gateway puts before formula characters
    (:func:`~interlock.validation.csv_body.neutralise_formulas`).
    """
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        wanted: list[tuple[int, int]] | None = None  # (position in columns, cell index)
        for record in reader:
            cells = [_unneutralised(cell) for cell in record] if strip else record
            if wanted is None:
                header: dict[str, int] = {}
                for index, name in enumerate(cells):
                    header.setdefault(name.strip(), index)
                wanted = [(i, header[c]) for i, c in enumerate(columns) if c in header]
                continue
            for position, index in wanted:
                if index < len(cells) and cells[index]:
                    yield position, cells[index]
    except (ValueError, csv.Error):  # not UTF-8, stray quotes, a field over the csv limit
        raise Unreadable from None


def _unneutralised(cell: str) -> str:
    """``cell`` without the ``'`` the gateway put before a formula character."""
    if cell.startswith("'") and neutralise_formulas(cell[1:]) == cell:
        return cell[1:]
    return cell


def xml_root(body: bytes, policy: XmlPolicy) -> Element:
    """``body`` parsed by defusedxml within ``policy`` (no DTD, entities or external references)."""
    # Imported on first use: xmlschema costs most of a second, and whoever imports
    # Sighting (the CLI, the lineage index) should not pay it for XML it never reads.
    from interlock.validation.xml_body import parse_xml

    try:
        return parse_xml(body, policy)
    except BodyRefused:
        raise Unreadable from None


def xml_texts(root: Element, path: str) -> Iterator[str]:
    """The text of each element without children that ElementTree's ``findall(path)`` selects."""
    for element in root.findall(path):
        if len(element) == 0 and element.text is not None:
            yield element.text
