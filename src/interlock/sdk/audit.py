"""Offline verification of the audit log: exports, proofs and signed tree heads.

Needs no server and no database (nothing here imports SQLAlchemy): give it an
export from ``interlock audit export`` and the log's verifier key, which you
obtained from a trusted place (``interlock audit key`` on the deployment, or
your witness)::

    from interlock.sdk.audit import NoteVerifier, verify_export

    key = NoteVerifier.parse(open("audit.vkey").read())
    with open("march.jsonl") as lines:
        summary = verify_export(lines, [key])
    print(summary.entries, "entries proven in the tree of size", summary.checkpoint.size)

Every check is strict (see :mod:`interlock.proofs.rfc9162`): an entry that is
altered, moved to another index, or carries a proof with a missing, extra or
altered element is refused with :class:`ProofError`; a tree head not signed by
a trusted key with :class:`CheckpointError`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from interlock.proofs.checkpoint import Checkpoint, open_checkpoint
from interlock.proofs.errors import CheckpointError, ProofError
from interlock.proofs.note import NoteVerifier
from interlock.proofs.rfc9162 import (
    leaf_hash,
    leaf_hashes,
    root_from_inclusion,
    root_of,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "ExportSummary",
    "NoteVerifier",
    "ProofError",
    "leaf_hash",
    "open_checkpoint",
    "root_from_proof",
    "verify_consistency",
    "verify_csv_export",
    "verify_entry",
    "verify_export",
    "verify_inclusion",
    "verify_tree",
]

EXPORT_FORMAT: Final = "interlock-audit-export/1"
MAX_LINE: Final = 64 * 1024


@dataclass(frozen=True)
class ExportSummary:
    """What an export proved: entries (with bodies) and pruned leaves, against one tree head."""

    checkpoint: Checkpoint
    entries: int
    pruned: int


def _decode(text: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f"{where}: not valid base64") from None
    # Base64 ignores the spare bits of its last character: "...B=" and "...C=" decode
    # alike. Only the canonical spelling passes, so one export has one byte form.
    if base64.b64encode(raw).decode("ascii") != text:
        raise ProofError(f"{where}: not in canonical base64")
    return raw


def verify_entry(
    checkpoint: Checkpoint,
    index: int,
    entry: bytes | None,
    leaf: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that ``entry`` (or, if pruned, its ``leaf`` hash) is at ``index`` under the head."""
    if entry is not None and leaf_hash(entry) != leaf:
        raise ProofError(f"entry {index}: its content does not match its leaf hash")
    verify_inclusion(index, checkpoint.size, leaf, proof, checkpoint.root)


def _check_record(checkpoint: Checkpoint, record: dict[str, Any], where: str) -> bool:
    index = record.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise ProofError(f"{where}: no entry index")
    entry = record.get("entry")
    proof = [_decode(p, f"{where}: proof") for p in record.get("proof") or []]
    leaf = _decode(str(record.get("leaf_hash", "")), f"{where}: leaf_hash")
    body = None if entry is None else str(entry).encode("utf-8")
    try:
        verify_entry(checkpoint, index, body, leaf, proof)
    except ProofError as exc:
        raise ProofError(f"{where}: {exc}") from None
    return body is not None


def verify_export(lines: Iterable[str], trusted: Sequence[NoteVerifier]) -> ExportSummary:
    """Verify a JSONL export: its tree head's signature, then every entry's inclusion."""
    checkpoint: Checkpoint | None = None
    entries = pruned = 0
    previous = -1
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE:
            raise ProofError(f"line {number}: too long")
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise ProofError(f"line {number}: not JSON") from None
        if not isinstance(record, dict):
            raise ProofError(f"line {number}: not a JSON object")
        if checkpoint is None:
            if record.get("format") != EXPORT_FORMAT or record.get("type") != "checkpoint":
                raise ProofError(f"line {number}: not an {EXPORT_FORMAT} header")
            checkpoint = open_checkpoint(str(record.get("checkpoint", "")), trusted)
            continue
        if record.get("index", -1) <= previous:
            raise ProofError(f"line {number}: entries are not in log order")
        previous = record["index"]
        if _check_record(checkpoint, record, f"line {number}"):
            entries += 1
        else:
            pruned += 1
    if checkpoint is None:
        raise ProofError("the export is empty")
    return ExportSummary(checkpoint, entries, pruned)


def verify_csv_export(
    lines: Iterable[str], checkpoint_note: str, trusted: Sequence[NoteVerifier]
) -> ExportSummary:
    """Verify a CSV export against its separately stored signed tree head."""
    checkpoint = open_checkpoint(checkpoint_note, trusted)
    entries = pruned = 0
    for number, row in enumerate(csv.DictReader(lines), start=2):
        try:
            index = int(row["index"])
        except (KeyError, TypeError, ValueError):
            raise ProofError(f"row {number}: no entry index") from None
        record = {
            "index": index,
            "leaf_hash": row.get("leaf_hash", ""),
            "proof": (row.get("proof") or "").split(),
            "entry": row.get("entry") or None,
        }
        if _check_record(checkpoint, record, f"row {number}"):
            entries += 1
        else:
            pruned += 1
    return ExportSummary(checkpoint, entries, pruned)


def root_from_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof implies (to compare with a tree head you trust)."""
    return root_from_inclusion(index, size, leaf, proof)


def verify_tree(entries: Sequence[bytes], checkpoint: Checkpoint) -> None:
    """Recompute the whole tree from every entry (index 0 on) and compare with the head.

    For a complete export of a log; raises :class:`ProofError` on any difference.
    """
    if len(entries) != checkpoint.size:
        raise ProofError(f"{len(entries)} entries given for a tree of size {checkpoint.size}")
    if root_of(leaf_hashes(entries)) != checkpoint.root:
        raise ProofError("the entries do not hash to the tree head's root")
