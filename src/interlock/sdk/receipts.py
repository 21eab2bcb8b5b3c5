"""Offline verification of a data-subject request's closing receipt.

Needs no server and no database: the receipt (``interlock privacy request``'s
closing document, format ``interlock-dsr-receipt/1``) and the audit log's
verifier key, obtained from a trusted place (``interlock audit key``)::

    from interlock.sdk.audit import NoteVerifier
    from interlock.sdk.receipts import verify_receipt

    key = NoteVerifier.parse(open("audit.vkey").read())
    summary = verify_receipt(open("receipt.json", "rb").read(), [key])
    print(summary.request_id, summary.outcome, summary.systems)

It checks that the tree head is signed by a trusted key, that every entry is
in that tree (leaf hash and RFC 9162 inclusion proof), that the statement
hashes to the digest the log's ``privacy.request.close`` entry recorded, and
that each step the statement names (created, each system asked and answered,
the traced ``gateway.request`` entries) is an entry of this request saying the
same thing. Anything else is refused: :class:`ProofError` naming what does not
hold, :class:`CheckpointError` for the tree head's signature.

What it proves: what each system answered, and when the log recorded it. Not
that a system really did what it answered (docs/privacy.md, "Receipts").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from interlock.proofs.canonical import canonical_json
from interlock.proofs.checkpoint import Checkpoint, open_checkpoint
from interlock.proofs.errors import CheckpointError, ProofError
from interlock.proofs.note import NoteVerifier
from interlock.sdk.audit import MAX_PROOF, strict_json, verify_entry

__all__ = [
    "MAX_RECEIPT_BYTES",
    "RECEIPT_FORMAT",
    "CheckpointError",
    "NoteVerifier",
    "ProofError",
    "ReceiptSummary",
    "verify_receipt",
]

RECEIPT_FORMAT: Final = "interlock-dsr-receipt/1"
MAX_RECEIPT_BYTES: Final = 16 * 1024 * 1024
MAX_STATEMENT_BYTES: Final = 1024 * 1024
MAX_NAME: Final = 200

# The entries of a request's steps (interlock.privacy.request_audit writes them).
_CREATE: Final = "privacy.request.create"
_ASK: Final = "privacy.request.ask"
_ANSWER: Final = "privacy.request.answer"
_CLOSE: Final = "privacy.request.close"
_TRACE: Final = "gateway.request"

_RECEIPT_KEYS: Final = frozenset(
    {"format", "statement", "statement_digest", "closed_index", "checkpoint", "entries"}
)
_RECORD_KEYS: Final = frozenset({"index", "leaf_hash", "entry", "proof"})
_STATEMENT_KEYS: Final = frozenset(
    {
        "request",
        "kind",
        "subject_kind",
        "created",
        "deadline",
        "closed",
        "outcome",
        "extension_reason",
        "systems",
        "created_index",
        "trace_indexes",
    }
)
_SYSTEM_KEYS: Final = frozenset(
    {
        "system",
        "connector",
        "status",
        "records",
        "answer_digest",
        "error",
        "asked_index",
        "answered_index",
    }
)
_TIME: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_FINAL: Final = frozenset({"done", "not_found", "failed", "manual"})
_WAITING: Final = frozenset({"pending", "asked"})
_SUCCESSES: Final = frozenset({"done", "not_found", "manual"})


@dataclass(frozen=True)
class ReceiptSummary:
    """What a verified receipt says: the request, its outcome, each system's status."""

    request_id: str
    kind: str
    outcome: str
    systems: dict[str, str]
    checkpoint: Checkpoint


def _document(document: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(document, Mapping):
        return document
    if len(document) > MAX_RECEIPT_BYTES:
        raise ProofError(f"the receipt is over {MAX_RECEIPT_BYTES} bytes")
    parsed = strict_json(document, "the receipt")
    if not isinstance(parsed, dict):
        raise ProofError("the receipt is not a JSON object")
    return parsed


def _members(value: object, keys: frozenset[str], what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProofError(f"{what} is not a JSON object")
    missing = sorted(keys - value.keys())
    if missing:
        raise ProofError(f"{what} lacks {missing[0]!r}")
    unknown = sorted(str(k) for k in value.keys() - keys)
    if unknown:
        raise ProofError(f"{what} has an unknown member {unknown[0]!r}")
    return value


def _count(value: object, what: str) -> int | None:
    if value is None:
        return None
    return _index(value, what)


def _index(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
        raise ProofError(f"{what} is not a non-negative integer")
    return value


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ProofError(f"{what} is not a non-empty string")
    return value


def _name(value: object, what: str) -> str:
    # Names are printed (interlock audit verify-receipt): one printable word, never a
    # control sequence a terminal would act on.
    text = _text(value, what)
    if len(text) > MAX_NAME or not text.isprintable() or any(c.isspace() for c in text):
        raise ProofError(f"{what} is not a name (printable, no spaces, {MAX_NAME} at most)")
    return text


def _optional_text(value: object, what: str) -> str | None:
    return None if value is None else _text(value, what)


def _time(value: object, what: str) -> str:
    try:
        if isinstance(value, str) and _TIME.fullmatch(value):
            datetime.fromisoformat(value)  # a real date and time (the pattern fixed the form)
            return value
    except ValueError:
        pass
    raise ProofError(f"{what} is not a UTC time (YYYY-MM-DDTHH:MM:SSZ)")


def _decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ProofError(f"{what} is not base64 text")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f"{what} is not valid base64") from None
    # The last character's spare bits are ignored by decoders: accept only the one
    # canonical spelling, so that no changed byte of a receipt still verifies.
    if base64.b64encode(raw).decode() != text:
        raise ProofError(f"{what} is not in canonical base64")
    return raw


def _entries(records: object, checkpoint: Checkpoint) -> dict[int, dict[str, Any]]:
    """Every record proven in the tree; the decoded entries by index."""
    if not isinstance(records, list):
        raise ProofError("the receipt's entries are not a JSON array")
    entries: dict[int, dict[str, Any]] = {}
    previous = -1
    for position, raw in enumerate(records):
        record = _members(raw, _RECORD_KEYS, f"entries[{position}]")
        index = _index(record["index"], f"entries[{position}].index")
        where = f"entry {index}"
        if index <= previous:
            raise ProofError(f"{where}: the entries are not in log order, or one is repeated")
        previous = index
        body = record["entry"]
        if body is None:
            raise ProofError(f"{where} was pruned: its content cannot be checked")
        if not isinstance(body, str):
            raise ProofError(f"{where}: the entry is not JSON text")
        proof = record["proof"]
        if not isinstance(proof, list) or len(proof) > MAX_PROOF:
            raise ProofError(f"{where}: the proof is not a list of hashes")
        hashes = [_decode(p, f"{where}: a proof hash") for p in proof]
        leaf = _decode(record["leaf_hash"], f"{where}: the leaf hash")
        try:
            verify_entry(checkpoint, index, body.encode("utf-8"), leaf, hashes)
        except ProofError as exc:
            raise ProofError(f"{where}: {exc}") from None
        decoded = strict_json(body, f"{where}")
        if not isinstance(decoded, dict) or not isinstance(decoded.get("details"), dict):
            raise ProofError(f"{where} is not an audit entry")
        entries[index] = decoded
    return entries


class _Steps:
    """The proven entries, each claimed by exactly one step of the statement."""

    def __init__(self, entries: dict[int, dict[str, Any]], request: str) -> None:
        self.entries = entries
        self.request = request
        self.claimed: dict[int, str] = {}

    def take(self, index: int, action: str, role: str) -> dict[str, Any]:
        """The entry at ``index``: present, unclaimed, ``action``, of this request."""
        if index in self.claimed:
            raise ProofError(f"entry {index} is named as {role} and as {self.claimed[index]}")
        entry = self.entries.get(index)
        if entry is None:
            raise ProofError(f"{role} (entry {index}) is not in the receipt")
        self.claimed[index] = role
        if entry.get("action") != action:
            raise ProofError(f"{role} (entry {index}) is not a {action} entry")
        if action != _TRACE and entry["details"].get("request") != self.request:
            raise ProofError(f"{role} (entry {index}) belongs to another request")
        details: dict[str, Any] = entry["details"]
        return details

    def unclaimed(self) -> None:
        """Refuse an entry the statement does not name (it would be counted for nothing)."""
        extra = sorted(self.entries.keys() - self.claimed.keys())
        if extra:
            raise ProofError(
                f"entry {extra[0]} is in the receipt but the statement names no step of it"
            )


def _same(details: Mapping[str, Any], key: str, expected: object, role: str) -> None:
    if details.get(key) != expected:
        raise ProofError(f"{role} says {key} {details.get(key)!r}, the statement {expected!r}")


def _check_system(
    steps: _Steps, raw: object, position: int, created: int, closed: int
) -> tuple[str, str]:
    system = _members(raw, _SYSTEM_KEYS, f"the statement's systems[{position}]")
    name = _name(system["system"], f"the statement's systems[{position}].system")
    where = f"system {name!r}"
    connector = _name(system["connector"], f"{where}: connector")
    status = _name(system["status"], f"{where}: status")
    records = _count(system["records"], f"{where}: records")
    digest = _optional_text(system["answer_digest"], f"{where}: answer_digest")
    _optional_text(system["error"], f"{where}: error")
    asked = _count(system["asked_index"], f"{where}: asked_index")
    answered = _count(system["answered_index"], f"{where}: answered_index")
    if status not in _FINAL | _WAITING:
        raise ProofError(f"{where}: unknown status {status!r}")
    if (answered is not None) != (status in _FINAL):
        raise ProofError(f"{where}: status {status!r} without its answer entry, or the reverse")
    last = created
    if asked is not None:
        role = f"{where}'s ask"
        details = steps.take(asked, _ASK, role)
        _same(details, "system", name, role)
        _same(details, "connector", connector, role)
        if not created < asked < closed:
            raise ProofError(
                f"{role} (entry {asked}) is not between the request's creation and close"
            )
        last = asked
    if answered is not None:
        role = f"{where}'s answer"
        details = steps.take(answered, _ANSWER, role)
        _same(details, "system", name, role)
        _same(details, "status", status, role)
        _same(details, "records", records, role)
        _same(details, "answer_digest", digest, role)
        if not last < answered < closed:
            raise ProofError(f"{role} (entry {answered}) is out of order with the request's steps")
    return name, status


def _digest(statement: Mapping[str, Any]) -> str:
    try:
        encoded = canonical_json(statement, max_bytes=MAX_STATEMENT_BYTES)
    except ValueError as exc:
        raise ProofError(f"the statement cannot be encoded canonically: {exc}") from None
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


def _check_request(
    steps: _Steps, statement: Mapping[str, Any], digest: str, closed: int
) -> tuple[str, str, int]:
    """The close and create entries say what the statement says: (kind, outcome, created)."""
    kind = _name(statement["kind"], "the statement's kind")
    subject_kind = _name(statement["subject_kind"], "the statement's subject_kind")
    for name in ("created", "deadline", "closed"):
        _time(statement[name], f"the statement's {name}")
    extension = _optional_text(statement["extension_reason"], "the statement's extension_reason")
    outcome = _name(statement["outcome"], "the statement's outcome")
    if outcome not in ("completed", "incomplete"):
        raise ProofError(f"the statement's outcome {outcome!r} is neither completed nor incomplete")
    close = steps.take(closed, _CLOSE, "the close entry")
    _same(close, "statement", digest, "the close entry")
    _same(close, "outcome", outcome, "the close entry")
    created = _index(statement["created_index"], "the statement's created_index")
    create = steps.take(created, _CREATE, "the create entry")
    _same(create, "kind", kind, "the create entry")
    _same(create, "subject_kind", subject_kind, "the create entry")
    if extension is None:  # never extended: the deadline is still the first one
        _same(create, "deadline", statement["deadline"], "the create entry")
    if not created < closed:
        raise ProofError(f"the create entry ({created}) is not before the close entry ({closed})")
    systems = statement["systems"]
    if not isinstance(systems, list):
        raise ProofError("the statement's systems are not a JSON array")
    _same(create, "systems", len(systems), "the create entry")
    return kind, outcome, created


def _check_systems(
    steps: _Steps, systems: list[Any], created: int, closed: int, outcome: str
) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for position, raw in enumerate(systems):
        name, status = _check_system(steps, raw, position, created, closed)
        if name in statuses:
            raise ProofError(f"system {name!r} appears twice in the statement")
        statuses[name] = status
    if outcome == "completed" and not set(statuses.values()) <= _SUCCESSES:
        raise ProofError("the statement says completed, but a system did not answer with success")
    return statuses


def _check_traces(steps: _Steps, traces: object) -> None:
    if not isinstance(traces, list):
        raise ProofError("the statement's trace_indexes are not a JSON array")
    for position, value in enumerate(traces):
        index = _index(value, f"the statement's trace_indexes[{position}]")
        steps.take(index, _TRACE, f"the trace entry {index}")


def verify_receipt(
    document: str | bytes | Mapping[str, Any], trusted: Sequence[NoteVerifier]
) -> ReceiptSummary:
    """Verify a receipt offline against the log's verifier key(s); what it says, if it holds.

    Raises :class:`ProofError` (naming the first thing that does not hold) or
    :class:`CheckpointError` (the tree head is not signed by a trusted key).
    """
    receipt = _members(_document(document), _RECEIPT_KEYS, "the receipt")
    if receipt["format"] != RECEIPT_FORMAT:
        raise ProofError(f"the receipt's format is not {RECEIPT_FORMAT}")
    note = receipt["checkpoint"]
    if not isinstance(note, str):
        raise CheckpointError("the receipt's checkpoint is not a signed note")
    checkpoint = open_checkpoint(note, trusted)
    entries = _entries(receipt["entries"], checkpoint)
    statement = _members(receipt["statement"], _STATEMENT_KEYS, "the statement")
    digest = _digest(statement)
    if receipt["statement_digest"] != digest:
        raise ProofError("the statement does not match the receipt's statement_digest")
    request = _name(statement["request"], "the statement's request")
    steps = _Steps(entries, request)
    closed = _index(receipt["closed_index"], "closed_index")
    kind, outcome, created = _check_request(steps, statement, digest, closed)
    systems = _check_systems(steps, statement["systems"], created, closed, outcome)
    _check_traces(steps, statement["trace_indexes"])
    steps.unclaimed()
    return ReceiptSummary(request, kind, outcome, systems, checkpoint)
