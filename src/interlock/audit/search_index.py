"""The search index's rows: what an entry is found by, and the backfill of an older log.

``audit_search`` holds, per entry with a body, its index, time, correlation
id, client (``NAME`` of an actor ``client:NAME``), integration and action —
never the client's address, not even its pseudonym. The appending
transaction writes the rows of its entries (:mod:`interlock.audit.storage`),
so the index is exactly as durable as the log. Prune deletes an entry's row
with its body (:mod:`interlock.audit.prune`): the row repeats the entry's
fields, and retention is about holding them no longer.

An append hands in each entry's :data:`SearchHead` (its correlation id,
client and action, which the caller had as values before encoding them):
the row is then built without reading the bytes. Otherwise (the backfill, a
search checking a hit, a caller without them) the fields are read from the
entry's canonical bytes. Canonical JSON sorts
its keys, so ``action``, ``actor``, ``client_ip`` and ``correlation_id``
are the first four: :func:`search_row` reads just those with one regular
expression over the bytes (about 1 µs an entry; the JSON module's C string
scanner when a value holds an escape) instead of parsing the whole entry
(9 µs), and falls back to a full parse for any other layout.

A log made before the index gets it on the first open by a release that has
it: :func:`backfill` indexes the entries below the size recorded when the
index was created, a chunk per transaction (each with its progress row), so
an interrupted backfill resumes where it stopped.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, Engine, select, text

from interlock.audit.schema import BODIES, LEAVES, SEARCH, SEARCH_BACKFILL
from interlock.logs import get_logger

__all__ = [
    "BackfillReport",
    "SearchHead",
    "SearchRow",
    "backfill",
    "backfill_progress",
    "search_head",
    "search_row",
]

_log = get_logger("interlock.audit")

#: (index, time_us, correlation_id, client, integration, action): ``audit_search``'s columns.
SearchRow = tuple[int, int, str | None, str | None, str | None, str]

#: (correlation_id, client, action): the fields of a row that the entry's bytes hold.
SearchHead = tuple[str | None, str | None, str]

# The JSON module's string scanner (C); typeshed does not declare it.
scanstring: Final[Callable[[str, int], tuple[str, int]]] = json.decoder.scanstring  # type: ignore[attr-defined]
_CLIENT: Final = "client:"
# The canonical head when no value in it holds a quote, a backslash or a control
# character (JSON escapes): then the bytes between the quotes are the value.
_PLAIN: Final = rb'"([^"\\\x00-\x1f]*)"'
_PLAIN_HEAD: Final = re.compile(
    rb'\{"action":'
    + _PLAIN
    + rb',"actor":'
    + _PLAIN
    + rb',"client_ip":(?:null|"[^"\\\x00-\x1f]*"),"correlation_id":(?:null|'
    + _PLAIN
    + rb")"
)
_CHUNK: Final = 2000


def search_row(index: int, body: bytes, time_us: int, integration: str | None) -> SearchRow | None:
    """The index row of entry ``index``; None for bytes that are not an entry (never indexed)."""
    try:
        text = body.decode()  # the whole body: its bytes must be UTF-8
    except UnicodeDecodeError:
        return None
    plain = _PLAIN_HEAD.match(body)
    head: tuple[str, str, str | None] | None
    if plain is not None:  # the usual case: one match in C, nothing escaped
        action, actor, correlation_id = plain.groups()
        head = (
            action.decode(),
            actor.decode(),
            None if correlation_id is None else correlation_id.decode(),
        )
    else:
        try:
            head = _head(text)
        except (ValueError, IndexError):  # not the canonical layout: parse it all
            try:
                head = _parsed(text)
            except ValueError:
                head = None
    if head is None:
        return None
    action, actor, correlation_id = head
    return (index, time_us, *search_head(actor, action, correlation_id)[:2], integration, action)


def search_head(actor: str, action: str, correlation_id: str | None) -> SearchHead:
    """The indexed fields of an entry by ``actor`` (client: ``NAME`` of ``client:NAME``)."""
    client = actor[len(_CLIENT) :] if actor.startswith(_CLIENT) else None
    return (correlation_id, client or None, action)


def _expect(text: str, prefix: str, at: int) -> int:
    if not text.startswith(prefix, at):
        raise ValueError("not the canonical layout")
    return at + len(prefix)


def _head(text: str) -> tuple[str, str, str | None]:
    """``action``, ``actor``, ``correlation_id`` from the canonical layout (else ValueError)."""
    action, end = scanstring(text, _expect(text, '{"action":"', 0))
    actor, end = scanstring(text, _expect(text, ',"actor":"', end))
    end = _expect(text, ',"client_ip":', end)
    end = end + 4 if text.startswith("null", end) else scanstring(text, _expect(text, '"', end))[1]
    end = _expect(text, ',"correlation_id":', end)
    if text.startswith("null", end):
        return action, actor, None
    correlation_id, _ = scanstring(text, _expect(text, '"', end))
    return action, actor, correlation_id


def _parsed(text: str) -> tuple[str, str, str | None] | None:
    fields = json.loads(text)
    if not isinstance(fields, dict):
        return None
    action, actor, correlation_id = (
        fields.get("action"),
        fields.get("actor"),
        fields.get("correlation_id"),
    )
    if not isinstance(action, str) or not isinstance(actor, str):
        return None
    if correlation_id is not None and not isinstance(correlation_id, str):
        return None
    return action, actor, correlation_id


@dataclass(frozen=True)
class BackfillReport:
    """What one run of :func:`backfill` did."""

    indexed: int  # rows written
    without_body: int  # entries in the range whose body was pruned: no row, not searchable
    done: bool  # every entry below the target is covered


def backfill_progress(connection: Connection) -> tuple[int, int]:
    """``(upto, target)``: entries below ``upto`` are backfilled, of ``target`` to do."""
    query = select(SEARCH_BACKFILL.c.upto, SEARCH_BACKFILL.c.target)
    row = connection.execute(query.order_by(SEARCH_BACKFILL.c.upto.desc()).limit(1)).first()
    return (0, 0) if row is None else (int(row.upto), int(row.target))


def backfill(
    writer: Engine, *, lock_sql: str | None = None, chunk: int = _CHUNK, limit: int | None = None
) -> BackfillReport:
    """Index the entries the log held when the index was created, ``chunk`` per transaction.

    ``writer`` is the appending engine (SQLite: ``BEGIN IMMEDIATE``), and
    ``lock_sql`` the appenders' lock on PostgreSQL, so a chunk never races an
    append, a prune or another backfill; each re-reads the progress under it.
    ``limit`` stops after that many chunks (tests of resuming). Cheap when
    there is nothing to do: one indexed look-up.
    """
    with writer.connect() as connection:
        upto, target = backfill_progress(connection)
    indexed = without_body = chunks = 0
    while upto < target and (limit is None or chunks < limit):
        with writer.begin() as connection:
            if lock_sql is not None:
                connection.execute(text(lock_sql))
            upto, target = backfill_progress(connection)
            if upto >= target:
                break
            end = min(upto + chunk, target)
            rows = _rows(connection, upto, end)
            if rows:
                connection.execute(
                    SEARCH.insert(), [dict(zip(_COLUMNS, r, strict=True)) for r in rows]
                )
            connection.execute(
                SEARCH_BACKFILL.insert().values(
                    upto=end, target=target, created_us=time.time_ns() // 1000
                )
            )
        indexed += len(rows)
        without_body += end - upto - len(rows)
        upto = end
        chunks += 1
    if indexed or without_body:
        _log.info(
            "audit_search_backfilled",
            indexed=indexed,
            without_body=without_body,
            upto=upto,
            target=target,
        )
    return BackfillReport(indexed, without_body, upto >= target)


_COLUMNS: Final = tuple(column.name for column in SEARCH.columns)


def _rows(connection: Connection, start: int, end: int) -> list[SearchRow]:
    query = (
        select(LEAVES.c.idx, LEAVES.c.time_us, LEAVES.c.integration, BODIES.c.body)
        .join(BODIES, BODIES.c.idx == LEAVES.c.idx)
        .where(LEAVES.c.idx >= start, LEAVES.c.idx < end)
        .order_by(LEAVES.c.idx)
    )
    rows = []
    for found in connection.execute(query):
        row = search_row(found.idx, bytes(found.body), found.time_us, found.integration)
        if row is not None:
            rows.append(row)
    return rows
