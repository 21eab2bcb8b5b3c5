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
a trusted key with :class:`CheckpointError`. So is any malformed input (a
member repeated, a value of the wrong type, a line over :data:`MAX_LINE`,
nesting too deep, a CSV row whose readable columns are not its entry's):
one :class:`ProofError`, never another exception.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from interlock.proofs.checkpoint import Checkpoint, open_checkpoint
from interlock.proofs.errors import CheckpointError, ProofError
from interlock.proofs.export_format import CSV_COLUMNS, FORMAT, csv_row
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

MAX_LINE: Final = 64 * 1024
MAX_PROOF: Final = 64  # an RFC 9162 proof of a tree under 2**63 leaves is shorter


@dataclass(frozen=True)
class ExportSummary:
    """What an export proved: entries (with bodies) and pruned leaves, against one tree head."""

    checkpoint: Checkpoint
    entries: int
    pruned: int


def strict_json(text: str | bytes, what: str) -> Any:
    """Parse an untrusted document; :class:`ProofError` for anything but plain JSON.

    A member repeated in one object is refused: parsers disagree on which copy
    counts (first or last wins), so a verifier reading one and a person's tool
    reading the other would see different things. ``NaN`` and ``Infinity`` are
    no JSON; nesting too deep for the parser is refused, not a crash.
    """
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=_no_constant)
    except _RefusedJsonError as exc:
        raise ProofError(f"{what} {exc.args[0]}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ProofError(f"{what} is not JSON") from None


class _RefusedJsonError(ValueError):
    """Parsed, but refused: the argument says why (after the document's name)."""


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _RefusedJsonError(f"repeats the member {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> None:
    raise _RefusedJsonError(f"holds {name}, which is not JSON")


def _decode(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise ProofError(f"{where}: not base64 text")
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


def _index(value: object, where: str, previous: int) -> int:
    """The record's entry index: an integer (not a boolean) above the previous one."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError(f"{where}: no entry index")
    if value <= previous:
        raise ProofError(f"{where}: entries are not in log order, or one is repeated")
    return value


def _check_record(
    checkpoint: Checkpoint, index: int, record: Mapping[str, Any], where: str
) -> str | None:
    """Check one record's entry (or pruned leaf) and proof; the entry's text (None: pruned)."""
    entry, proof = record.get("entry"), record.get("proof")
    if entry is not None and not isinstance(entry, str):
        raise ProofError(f"{where}: the entry is not JSON text")
    if not isinstance(proof, list) or len(proof) > MAX_PROOF:
        raise ProofError(f"{where}: the proof is not a list of hashes")
    hashes = [_decode(p, f"{where}: proof") for p in proof]
    leaf = _decode(record.get("leaf_hash"), f"{where}: leaf_hash")
    body = None if entry is None else entry.encode("utf-8")
    try:
        verify_entry(checkpoint, index, body, leaf, hashes)
    except ProofError as exc:
        raise ProofError(f"{where}: {exc}") from None
    return entry


def _bounded(lines: Iterable[str]) -> Iterator[str]:
    """The lines of ``lines``; one longer than :data:`MAX_LINE` is refused before it is read
    whole (a file or stream is read with ``readline(MAX_LINE + 1)``)."""
    readline = getattr(lines, "readline", None)
    source: Iterable[str] = lines if readline is None else iter(lambda: readline(MAX_LINE + 1), "")
    for number, line in enumerate(source, start=1):
        if len(line) > MAX_LINE:
            raise ProofError(f"line {number}: too long")
        yield line


def verify_export(lines: Iterable[str], trusted: Sequence[NoteVerifier]) -> ExportSummary:
    """Verify a JSONL export: its tree head's signature, then every entry's inclusion.

    ``lines`` is best an open file (or any stream with ``readline``): no line is
    read past :data:`MAX_LINE`.
    """
    checkpoint: Checkpoint | None = None
    entries = pruned = 0
    previous = -1
    for number, line in enumerate(_bounded(lines), start=1):
        where = f"line {number}"
        record = strict_json(line, where)
        if not isinstance(record, dict):
            raise ProofError(f"{where}: not a JSON object")
        if checkpoint is None:
            note = record.get("checkpoint")
            if record.get("format") != FORMAT or record.get("type") != "checkpoint":
                raise ProofError(f"{where}: not an {FORMAT} header")
            if not isinstance(note, str):
                raise ProofError(f"{where}: the header's checkpoint is not a signed note")
            checkpoint = open_checkpoint(note, trusted)
            continue
        previous = _index(record.get("index"), where, previous)
        if _check_record(checkpoint, previous, record, where) is None:
            pruned += 1
        else:
            entries += 1
    if checkpoint is None:
        raise ProofError("the export is empty")
    return ExportSummary(checkpoint, entries, pruned)


def verify_csv_export(
    lines: Iterable[str], checkpoint_note: str, trusted: Sequence[NoteVerifier]
) -> ExportSummary:
    """Verify a CSV export against its separately stored signed tree head.

    Each row's entry is proven, then its readable columns are rebuilt from that
    entry and must be exactly the ones given: what a person reads is what was proven.
    """
    checkpoint = open_checkpoint(checkpoint_note, trusted)
    entries = pruned = 0
    previous = -1
    rows = csv.reader(_bounded(lines), strict=True)
    try:
        if next(rows, None) != list(CSV_COLUMNS):
            raise ProofError("row 1: not the header of an interlock audit CSV export")
        for number, row in enumerate(rows, start=2):
            where = f"row {number}"
            if len(row) != len(CSV_COLUMNS):
                raise ProofError(f"{where}: not {len(CSV_COLUMNS)} columns")
            given = dict(zip(CSV_COLUMNS, row, strict=True))
            try:
                index = int(given["index"])
            except ValueError:
                raise ProofError(f"{where}: no entry index") from None
            previous = _index(index, where, previous)
            record = {**given, "proof": given["proof"].split(), "entry": given["entry"] or None}
            entry = _check_record(checkpoint, index, record, where)
            _same_columns(row, index, record, entry, where)
            entries, pruned = (entries, pruned + 1) if entry is None else (entries + 1, pruned)
    except csv.Error as exc:
        raise ProofError(f"line {rows.line_num}: not CSV ({exc})") from None
    return ExportSummary(checkpoint, entries, pruned)


def _same_columns(
    row: list[str], index: int, record: Mapping[str, Any], entry: str | None, where: str
) -> None:
    """The row is the one the exporter writes for its (proven) entry, column by column."""
    fields = {} if entry is None else strict_json(entry, f"{where}: the entry")
    if not isinstance(fields, dict):
        raise ProofError(f"{where}: the entry is not an audit entry")
    expected = csv_row(index, record["leaf_hash"], record["proof"], entry, fields)
    for column, want, got in zip(CSV_COLUMNS, expected, row, strict=True):
        if want != got:
            raise ProofError(f"{where}: the {column} column does not say what the entry says")


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
