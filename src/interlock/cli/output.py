"""What commands print: JSON for programs, tables for people.

* ``--json`` (:data:`JsonOption`) prints one JSON document (:func:`print_json`):
  an object whose top-level key names what is listed (``{"keys": [...]}``) or
  the one object shown; field names are ``snake_case``, timestamps RFC 3339
  UTC, absent values ``null``. They are stable: a rename is a breaking change
  (docs/cli.md lists them).
* Tables (:func:`table`, :func:`print_table`) never cut an identifier — the
  values the next command takes (key ids, serials, SPIFFE ids, names) — with an
  ellipsis or across lines: those columns get the width of their longest value,
  the other columns wrap, and when even that does not fit the table is printed
  wider than the terminal rather than cut (the terminal wraps the line whole).
  ``NO_COLOR`` and output that is not a terminal get plain text (rich's rules).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, overload

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from interlock.cli.context import console

__all__ = ["Col", "JsonOption", "iso", "print_json", "print_table", "table", "when"]

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document (stable field names; docs/cli.md)."),
]


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC (``2026-12-05T13:45:00Z``), ``None`` for ``None``."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def when(value: datetime | None, absent: str = "-", *, utc: bool = True) -> str:
    """A time for a table: ``2026-12-05 13:45 UTC`` (``utc=False``: without the zone);
    ``absent`` for ``None``."""
    if value is None:
        return absent
    return f"{value:%Y-%m-%d %H:%M}" + (" UTC" if utc else "")


def _default(value: object) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def print_json(document: Mapping[str, Any] | Sequence[Any]) -> None:
    """Print ``document`` as indented JSON on stdout (UTF-8, no colour, one trailing newline)."""
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=_default))


@dataclass(frozen=True)
class Col:
    """A column; ``identifier`` columns are never cut (see the module docstring)."""

    header: str
    identifier: bool = False
    justify: str = "left"


def table(title: str | None, *columns: str | Col, caption: str | None = None) -> Table:
    """A table with these columns; a plain string is an ordinary (wrapping) column."""
    result = Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
    )
    for column in columns:
        spec = Col(column) if isinstance(column, str) else column
        result.add_column(
            spec.header,
            no_wrap=spec.identifier,
            overflow="fold",
            justify="right" if spec.justify == "right" else "left",
        )
    return result


def print_table(result: Table) -> None:
    """Print ``result`` so that no identifier column is cut (wider than the terminal if need be)."""
    needed = 1
    for column in result.columns:
        cells = [_width(cell) for cell in column.cells]
        longest = max([_width(column.header), *cells])
        if column.no_wrap:  # an identifier column (table() marks only those)
            column.min_width = longest
        else:  # wraps between words; a word is cut only beyond _WORD
            words = [_longest_word(cell) for cell in column.cells] + [_longest_word(column.header)]
            column.min_width = min(max(words), _WORD)
        needed += column.min_width + 3  # padding and the border
    if needed <= console.width:
        console.print(result)
        return
    wide = Console(
        file=console.file,
        width=needed,
        highlight=False,
        force_terminal=console.is_terminal,
        no_color=console.no_color,
        color_system=console.color_system,  # type: ignore[arg-type]
    )
    wide.print(result, crop=False)


_WORD = 24


def _longest_word(cell: object) -> int:
    return max((len(word) for word in _plain(cell).split()), default=0)


def _width(cell: object) -> int:
    return max((len(line) for line in _plain(cell).splitlines()), default=0)


def _plain(cell: object) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return ""
