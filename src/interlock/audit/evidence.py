"""Chosen audit entries with their inclusion proofs against one signed tree head.

What a trace report and a data-subject request's receipt carry so that anyone
can check them offline with :mod:`interlock.sdk.audit` (``verify_entry``) and
the log's verifier key: each entry's canonical bytes, leaf hash and RFC 9162
inclusion proof, all against the newest checkpoint (a C2SP signed note). The
record shape is the one ``interlock audit export`` writes per line.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from interlock.audit.errors import AuditError
from interlock.audit.proofs import ProofReader
from interlock.audit.schema import BODIES, LEAVES
from interlock.audit.storage import LogStore
from interlock.proofs.rfc9162 import inclusion_path

__all__ = ["Evidence", "evidence_for"]


@dataclass(frozen=True)
class Evidence:
    """``checkpoint`` (signed note, tree of ``size``) and one record per entry, in log order.

    A record is ``{"index", "leaf_hash" (base64), "entry" (canonical JSON, or
    None when pruned), "proof" ([base64, ...])}``.
    """

    checkpoint: str
    size: int
    records: tuple[dict[str, Any], ...]

    def as_json(self) -> dict[str, Any]:
        """The evidence as a JSON object: ``{"checkpoint", "size", "entries"}``."""
        return {"checkpoint": self.checkpoint, "size": self.size, "entries": list(self.records)}


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def evidence_for(engine: Engine, indexes: Iterable[int]) -> Evidence:
    """The entries at ``indexes`` with proofs against the newest signed tree head.

    Raises :class:`AuditError` when the log has no tree head yet, or when an
    index is not (yet) covered by it — sign a tree head first (the writer signs
    one per batch, so a committed entry is normally covered).
    """
    wanted = sorted(set(indexes))
    latest = LogStore(engine).latest_checkpoint()
    if latest is None:
        raise AuditError("the audit log has no signed tree head yet")
    beyond = [i for i in wanted if not 0 <= i < latest.size]
    if beyond:
        raise AuditError(
            f"audit entry {beyond[0]} is not covered by the newest tree head (size {latest.size})"
        )
    records: list[dict[str, Any]] = []
    with engine.connect() as connection:
        reader = ProofReader(connection, latest.size)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = connection.execute(
                select(LEAVES.c.idx, LEAVES.c.leaf_hash, BODIES.c.body)
                .select_from(LEAVES.outerjoin(BODIES))
                .where(LEAVES.c.idx.in_(chunk))
                .order_by(LEAVES.c.idx)
            ).all()
            found = {row.idx for row in rows}
            missing = [i for i in chunk if i not in found]
            if missing:
                raise AuditError(f"the audit database lacks entry {missing[0]}")
            reader.prefetch([r for row in rows for r in inclusion_path(row.idx, latest.size)])
            records.extend(
                {
                    "index": row.idx,
                    "leaf_hash": _b64(bytes(row.leaf_hash)),
                    "entry": None if row.body is None else bytes(row.body).decode(),
                    "proof": [_b64(h) for h in reader.inclusion(row.idx, latest.size)],
                }
                for row in rows
            )
    return Evidence(latest.note, latest.size, tuple(records))
