"""``interlock audit export``: entries of a period as JSONL or CSV, verifiable offline.

JSONL: the first line is the signed tree head the proofs are against::

    {"format": "interlock-audit-export/1", "type": "checkpoint", "origin": ..., "size": N,
     "checkpoint": "<C2SP signed note>"}

then one line per entry, in log order::

    {"type": "entry", "index": i, "leaf_hash": "<base64>", "entry": "<canonical JSON>"
     or null when pruned, "proof": ["<base64>", ...]}

CSV: one row per entry with the entry's fields for reading, and the same
``index``, ``leaf_hash``, ``proof`` (space-separated) and ``entry`` columns
for checking; the signed tree head goes to a separate file. Verify either
with :mod:`interlock.sdk.audit` (no server, no database).
"""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, TextIO

from sqlalchemy import Connection, Engine, select

from interlock.audit.entry import decode_entry
from interlock.audit.errors import AuditError
from interlock.audit.proofs import ProofReader
from interlock.audit.schema import BODIES, LEAVES
from interlock.audit.storage import LogStore
from interlock.proofs.export_format import CSV_COLUMNS, FORMAT, csv_row
from interlock.proofs.rfc9162 import inclusion_path

__all__ = ["CSV_COLUMNS", "FORMAT", "ExportReport", "export_log"]

_CHUNK: Final = 500


@dataclass(frozen=True)
class ExportReport:
    """What was exported, and the tree head it is verifiable against."""

    size: int
    checkpoint: str
    entries: int
    pruned: int


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def export_log(
    engine: Engine,
    out: TextIO,
    *,
    start: datetime,
    end: datetime,
    integration: str | None = None,
    fmt: Literal["jsonl", "csv"] = "jsonl",
) -> ExportReport:
    """Write entries with ``start <= time < end`` (and of ``integration``) to ``out``."""
    latest = LogStore(engine).latest_checkpoint()
    if latest is None:
        raise AuditError("the audit log is empty: nothing to export")
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    else:
        origin = latest.note.split("\n", 1)[0]
        header = {"format": FORMAT, "type": "checkpoint", "origin": origin, "size": latest.size}
        out.write(json.dumps({**header, "checkpoint": latest.note}) + "\n")
    entries = pruned = 0
    with engine.connect() as connection:
        reader = ProofReader(connection, latest.size)
        for chunk in _chunks(connection, latest.size, start, end, integration):
            reader.prefetch([r for row in chunk for r in inclusion_path(row.idx, latest.size)])
            for row in chunk:
                proof = [_b64(h) for h in reader.inclusion(row.idx, latest.size)]
                body = None if row.body is None else bytes(row.body).decode()
                pruned += body is None
                entries += 1
                record = {
                    "type": "entry",
                    "index": row.idx,
                    "leaf_hash": _b64(bytes(row.leaf_hash)),
                    "entry": body,
                    "proof": proof,
                }
                if writer is not None:
                    fields = {} if body is None else decode_entry(body.encode())
                    writer.writerow(
                        csv_row(record["index"], record["leaf_hash"], proof, body, fields)
                    )
                else:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return ExportReport(latest.size, latest.note, entries, pruned)


def _chunks(
    connection: Connection, size: int, start: datetime, end: datetime, integration: str | None
) -> Iterator[list[Any]]:
    query = (
        select(LEAVES.c.idx, LEAVES.c.leaf_hash, BODIES.c.body)
        .select_from(LEAVES.outerjoin(BODIES))
        .where(
            LEAVES.c.idx < size,
            LEAVES.c.time_us >= int(start.timestamp() * 1_000_000),
            LEAVES.c.time_us < int(end.timestamp() * 1_000_000),
        )
        .order_by(LEAVES.c.idx)
        .limit(_CHUNK)
    )
    if integration is not None:
        query = query.where(LEAVES.c.integration == integration)
    after = -1
    while True:
        rows = connection.execute(query.where(LEAVES.c.idx > after)).all()
        if not rows:
            return
        yield list(rows)
        after = rows[-1].idx
