"""``interlock audit verify``: recompute the whole log from storage and check every tree head.

In one pass over the entries, in order:

* every index is present (a gap names the missing entry);
* every stored entry hashes to its leaf (RFC 9162 leaf hash), and an entry
  without a body is recorded as pruned by a prune that the log itself records;
* every stored tree node equals the one recomputed from the leaves;
* every stored tree head is signed by the log's key (pinned with ``trusted``)
  and its root equals the recomputed root at its size;
* witnessed tree heads (copies kept outside the database) are signed by the
  same key and agree with the log, so even a consistent rewrite of the whole
  database is caught; a tree head larger than the log means a truncated tail;
* an empty log passes only when nothing says it held entries: a pinned key
  (``trusted``) must be in it, and a witnessed tree head means it was emptied;
* no table holds a row below index 0, nor a body, search row or prune record
  for an index without a leaf: such rows are no entries of the log, whatever
  they hold (the schema's CHECK constraints refuse them; an older log's may
  predate them);
* every kept witness cosignature (C2SP tlog-cosignature) is on a stored tree
  head and, when that witness's key is given, verifies under it; the report
  says which tree heads each witness cosigned.

The first failure raises :class:`AuditVerificationError` naming the first
entry it implicates.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, Engine, and_, exists, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from interlock.audit.entry import decode_entry
from interlock.audit.errors import AuditVerificationError
from interlock.audit.frontier import Frontier, Node
from interlock.audit.keys import log_verifier
from interlock.audit.schema import BODIES, INDEXED, LEAVES, NODES, PRUNED, SEARCH
from interlock.audit.storage import LogStore, StoredCheckpoint
from interlock.proofs.checkpoint import open_checkpoint
from interlock.proofs.cosignature import CosignatureVerifier
from interlock.proofs.errors import CheckpointError
from interlock.proofs.note import NoteVerifier
from interlock.proofs.rfc9162 import leaf_hash

__all__ = ["PRUNE_ACTION", "Cosigned", "VerifyReport", "pruned_digest", "verify_log"]

PRUNE_ACTION: Final = "audit.prune"
_PRUNE_MARK: Final = b'"action":"audit.prune"'
_CHUNK: Final = 20_000


def pruned_digest(indexes: Sequence[int]) -> str:
    """The hex SHA-256 of sorted 8-byte big-endian indexes: what a prune entry commits to."""
    return hashlib.sha256(b"".join(i.to_bytes(8, "big") for i in sorted(indexes))).hexdigest()


@dataclass(frozen=True)
class Cosigned:
    """The tree heads one witness cosigned, and whether its key checked the cosignatures."""

    witness: str
    sizes: tuple[int, ...]
    latest_timestamp: int
    verified: bool  # False: no key for this witness was given, the lines were not checked


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification covered."""

    origin: str
    size: int
    checkpoints: int
    witnessed: int
    bodies: int
    pruned: int
    cosigned: tuple[Cosigned, ...] = ()


@dataclass
class _State:
    frontier: Frontier = field(default_factory=Frontier)
    heads: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # size -> root, where
    last_good: int = 0
    bodies: int = 0
    pruned_by: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    prunes: dict[int, dict[str, Any]] = field(default_factory=dict)


def _fail(message: str, index: int | None) -> AuditVerificationError:
    return AuditVerificationError(message, index)


def verify_log(
    engine: Engine,
    *,
    trusted: Sequence[NoteVerifier] = (),
    witnessed: Sequence[str] = (),
    cosigners: Sequence[CosignatureVerifier] = (),
) -> VerifyReport:
    """Verify the log in ``engine``; raise :class:`AuditVerificationError` at the first fault.

    ``cosigners`` are witnesses' keys: a kept cosignature by one of them must
    verify under it.
    """
    store = LogStore(engine)
    own = log_verifier(engine)
    if own is None:
        _keyless(store.size(), trusted=bool(trusted), witnessed=bool(witnessed))
        return VerifyReport("", 0, 0, 0, 0, 0)
    if trusted and own not in trusted:
        raise _fail("the log's checkpoint key is not the trusted key (was the log replaced?)", None)
    keys = list(trusted) or [own]
    state = _State()
    stored = store.checkpoints()
    for row in stored:
        _check_head(row, keys, own.name)
        state.heads[row.size] = (row.root, "tree head")
    for note in witnessed:
        try:
            head = open_checkpoint(note, keys, origin=own.name)
        except CheckpointError as exc:
            raise _fail(
                f"the witnessed tree head is not signed by this log's key ({exc}); "
                "the log may have been replaced",
                None,
            ) from None
        known = state.heads.get(head.size)
        if known is not None and known[0] != head.root:
            raise _fail(f"the witnessed tree head at size {head.size} contradicts the log", None)
        state.heads[head.size] = (head.root, "witnessed tree head")
    try:
        with engine.connect() as connection:
            _stream(connection, state)
    except SQLAlchemyError as exc:
        index = state.frontier.size
        raise _fail(
            f"the audit database cannot be read from entry {index} on ({type(exc).__name__})",
            index,
        ) from None
    stored += _heads_since(store, stored, state, keys, own.name)
    _finish(state, max((r.size for r in stored), default=0))
    try:
        with engine.connect() as connection:
            _strays(connection)
    except SQLAlchemyError as exc:
        raise _fail(f"the audit database cannot be read ({type(exc).__name__})", None) from None
    notes = {row.size: row.note for row in stored}
    return VerifyReport(
        own.name,
        state.frontier.size,
        len(stored),
        len(witnessed),
        state.bodies,
        sum(len(v) for v in state.pruned_by.values()),
        _cosigned(store, notes, cosigners),
    )


def _keyless(size: int, *, trusted: bool, witnessed: bool) -> None:
    """A log without a key is empty, and nothing outside it says it ever held entries."""
    if size:
        raise _fail("the log has entries but no checkpoint key", 0)
    if trusted:
        raise _fail("the log has no checkpoint key but one is pinned (was the log replaced?)", None)
    if witnessed:
        # Only this log's key can have signed the witnessed head: it held entries.
        raise _fail(
            "the log is empty but a tree head of it was witnessed (entries were truncated, "
            "or the log replaced)",
            0,
        )


def _check_head(row: StoredCheckpoint, keys: Sequence[NoteVerifier], origin: str) -> None:
    """A stored tree head is signed by one of ``keys`` and says what its row says."""
    try:
        head = open_checkpoint(row.note, keys, origin=origin)
    except CheckpointError as exc:
        reason = f"the tree head at size {row.size} is not validly signed: {exc}"
        raise _fail(reason, None) from None
    if (head.size, head.root) != (row.size, row.root):
        raise _fail(f"the tree head at size {row.size} disagrees with its signed note", None)


def _heads_since(
    store: LogStore,
    stored: list[StoredCheckpoint],
    state: _State,
    keys: Sequence[NoteVerifier],
    origin: str,
) -> list[StoredCheckpoint]:
    """The tree heads committed while the entries were read, the newest checked.

    A live log grows while it is verified: the heads are read first, the
    entries after, so the last entries read may have come with heads of their
    own. A batch and its head commit together, so the entries' end is a head's
    size: that head is read now, its signature and its root checked against
    the entries (the heads between are checked on the next run). Without one,
    the entries stay uncovered and :func:`_finish` says so.
    """
    signed = max((r.size for r in stored), default=0)
    size = state.frontier.size
    if size <= signed:
        return []
    later = [r for r in store.checkpoints() if signed < r.size <= size]
    if not later or later[-1].size != size:
        return []
    for row in later:
        _check_head(row, keys, origin)
    if later[-1].root != state.frontier.root():
        raise _fail(
            f"the tree head at size {size} does not match the entries; the first bad entry "
            f"is between {state.last_good} and {size - 1}",
            state.last_good,
        )
    state.last_good = size
    return later


def _cosigned(
    store: LogStore, notes: dict[int, str], cosigners: Sequence[CosignatureVerifier]
) -> tuple[Cosigned, ...]:
    """Check every kept cosignature; group them by witness."""
    keys = {c.name: c for c in cosigners}
    by_witness: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for kept in store.cosignatures():
        note = notes.get(kept.size)
        if note is None:
            raise _fail(f"a cosignature by {kept.witness} is on a tree head the log lacks", None)
        key = keys.get(kept.witness)
        if key is not None:
            text = note[: note.index("\n\n") + 1]
            try:
                found = key.find(text, kept.line)
            except CheckpointError as exc:
                raise _fail(
                    f"the cosignature by {kept.witness} of the tree head at size {kept.size} "
                    f"does not verify under its key ({exc})",
                    None,
                ) from None
            if found.timestamp != kept.timestamp:
                raise _fail(f"the cosignature by {kept.witness} is not dated as kept", None)
        by_witness[kept.witness].append((kept.size, kept.timestamp))
    return tuple(
        Cosigned(
            witness,
            tuple(size for size, _ in heads),
            max(stamp for _, stamp in heads),
            witness in keys,
        )
        for witness, heads in sorted(by_witness.items())
    )


def _stream(connection: Connection, state: _State) -> None:
    while True:
        start = state.frontier.size
        rows = connection.execute(
            select(LEAVES.c.idx, LEAVES.c.leaf_hash, BODIES.c.body, PRUNED.c.prune_idx)
            .select_from(LEAVES.outerjoin(BODIES).outerjoin(PRUNED))
            .where(LEAVES.c.idx >= start)
            .order_by(LEAVES.c.idx)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        nodes = _stored_nodes(connection, start, rows[-1].idx + 1)
        for row in rows:
            _leaf(state, row, nodes)


def _strays(connection: Connection) -> None:
    """No row lies below index 0, and every body, search row and prune record has its leaf.

    The stream reads the leaves from index 0 up, so rows outside them are never
    compared with anything, yet ``audit search`` or a reader of the tables would
    show them. (Rows of a batch committed after the stream have their leaf.)
    """
    for column in INDEXED:
        below = connection.execute(
            select(func.count()).select_from(column.table).where(column < 0)
        ).scalar_one()
        if below:
            raise _fail(
                f"{column.table.name} holds rows below index 0 ({below} in {column.name}): "
                "no entry of the log is there (planted?)",
                None,
            )
    for table in (BODIES, SEARCH, PRUNED):
        leaf = exists().where(LEAVES.c.idx == table.c.idx)
        orphans = connection.execute(
            select(func.count()).select_from(table).where(~leaf)
        ).scalar_one()
        if orphans:
            raise _fail(
                f"{table.name} holds rows for entries the log does not have ({orphans}; planted?)",
                None,
            )


def _stored_nodes(connection: Connection, start: int, end: int) -> dict[tuple[int, int], bytes]:
    """The stored nodes that leaves ``[start, end)`` complete."""
    conditions = []
    for level in range(1, 64):
        low, high = (
            -(-(start + 1) >> level) - 1,
            (end >> level) - 1,
        )  # (idx+1) << level in (start, end]
        if low <= high:
            conditions.append(and_(NODES.c.level == level, NODES.c.idx.between(low, high)))
    if not conditions:
        return {}
    query = select(NODES.c.level, NODES.c.idx, NODES.c.hash).where(or_(*conditions))
    return {(r.level, r.idx): bytes(r.hash) for r in connection.execute(query)}


def _leaf(state: _State, row: Any, nodes: dict[tuple[int, int], bytes]) -> None:
    index = state.frontier.size
    if row.idx != index:
        raise _fail(f"entry {index} is missing (the next stored entry is {row.idx})", index)
    stored = bytes(row.leaf_hash)
    if row.body is not None:
        body = bytes(row.body)
        if leaf_hash(body) != stored:
            raise _fail(f"entry {index} does not match its leaf hash (altered or moved)", index)
        state.bodies += 1
        if _PRUNE_MARK in body:
            state.prunes[index] = decode_entry(body).get("details", {})
    elif row.prune_idx is not None:
        state.pruned_by[int(row.prune_idx)].append(index)
    else:
        raise _fail(f"entry {index} has no body and was not pruned (deleted)", index)
    for node in state.frontier.append(stored):
        _check_node(node, nodes)
    size = state.frontier.size
    head = state.heads.get(size)
    if head is not None:
        if head[0] != state.frontier.root():
            raise _fail(
                f"the {head[1]} at size {size} does not match the entries; the first bad entry "
                f"is between {state.last_good} and {size - 1}",
                state.last_good,
            )
        state.last_good = size


def _check_node(node: Node, nodes: dict[tuple[int, int], bytes]) -> None:
    first, last = node.index << node.level, ((node.index + 1) << node.level) - 1
    stored = nodes.get((node.level, node.index))
    if stored is None:
        raise _fail(f"the tree node over entries {first}..{last} is missing", first)
    if stored != node.hash:
        raise _fail(f"entries {first}..{last} do not match the stored tree node over them", first)


def _finish(state: _State, signed: int) -> None:
    size = state.frontier.size
    beyond = [s for s in state.heads if s > size]
    if beyond:
        raise _fail(
            f"the log ends at entry {size} but a tree head was signed at size {max(beyond)} "
            "(entries were truncated)",
            size,
        )
    if size > signed:
        raise _fail(f"entries {signed}..{size - 1} are not covered by a signed tree head", signed)
    for prune_index, indexes in state.pruned_by.items():
        claim = state.prunes.get(prune_index)
        if claim is None or prune_index <= max(indexes):
            raise _fail(
                f"entry {min(indexes)} is marked pruned by entry {prune_index}, "
                "which records no such prune",
                min(indexes),
            )
        if claim.get("count") != len(indexes) or claim.get("digest") != pruned_digest(indexes):
            raise _fail(
                f"the bodies removed under the prune at entry {prune_index} are not the ones it "
                "records",
                min(indexes),
            )
    for prune_index, claim in state.prunes.items():
        if claim.get("count", 0) and prune_index not in state.pruned_by:
            raise _fail(f"the prune at entry {prune_index} removed nothing it records", prune_index)
