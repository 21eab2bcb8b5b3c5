"""Entries of a period, read from a verified log: what reports over the trail build on.

:func:`read_window` first verifies the whole log (:func:`~interlock.audit.verify.verify_log`:
every leaf, node and signed tree head, and the witnessed heads given) and refuses
to read one that fails, then streams the entries of ``[start, end)`` up to the
verified size. Each body read is hashed again and compared with its leaf, so an
entry changed between the verification and the read is refused too.

An entry whose body retention removed (``audit prune``) comes back with
``fields=None``: only its index, time and integration are known, and those two
come from the leaf's index columns, which the leaf hash does not cover (the
schema's triggers refuse to update them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine, select

from interlock.audit.entry import decode_entry
from interlock.audit.errors import AuditVerificationError
from interlock.audit.schema import BODIES, LEAVES
from interlock.audit.verify import VerifyReport, verify_log
from interlock.proofs.rfc9162 import leaf_hash

__all__ = ["StoredEntry", "VerifiedWindow", "read_window"]

_CHUNK: Final = 2000


@dataclass(frozen=True)
class StoredEntry:
    """One entry of the window: its decoded fields, or ``None`` when its body was pruned."""

    index: int
    time_us: int
    integration: str | None
    fields: dict[str, Any] | None


@dataclass(frozen=True)
class VerifiedWindow:
    """The verification that passed, and the entries of the window (a one-pass iterator)."""

    verified: VerifyReport
    entries: Iterator[StoredEntry]


def read_window(
    engine: Engine, start: datetime, end: datetime, *, witnessed: Sequence[str] = ()
) -> VerifiedWindow:
    """Verify the log in ``engine``, then stream its entries with ``start <= time < end``.

    Raises :class:`AuditVerificationError` when the log fails verification
    (nothing is read then) or an entry read does not match its leaf.
    """
    report = verify_log(engine, witnessed=witnessed)
    low, high = _micros(start), _micros(end)
    return VerifiedWindow(report, _stream(engine, low, high, report.size))


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _stream(engine: Engine, low: int, high: int, size: int) -> Iterator[StoredEntry]:
    query = (
        select(LEAVES.c.idx, LEAVES.c.leaf_hash, LEAVES.c.time_us, LEAVES.c.integration)
        .add_columns(BODIES.c.body)
        .select_from(LEAVES.outerjoin(BODIES))
        .where(LEAVES.c.idx < size, LEAVES.c.time_us >= low, LEAVES.c.time_us < high)
        .order_by(LEAVES.c.idx)
        .limit(_CHUNK)
    )
    after = -1
    while True:
        with engine.connect() as connection:
            rows = connection.execute(query.where(LEAVES.c.idx > after)).all()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        after = rows[-1].idx


def _entry(row: Any) -> StoredEntry:
    if row.body is None:
        return StoredEntry(row.idx, row.time_us, row.integration, None)
    body = bytes(row.body)
    if leaf_hash(body) != bytes(row.leaf_hash):
        raise AuditVerificationError(
            f"entry {row.idx} does not match its leaf hash (changed after verification)", row.idx
        )
    return StoredEntry(row.idx, row.time_us, row.integration, decode_entry(body))
