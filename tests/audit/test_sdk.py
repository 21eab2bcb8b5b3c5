"""The offline verifier: importable without the server's database layer; whole-tree checks;
exports refused, as one ProofError, when altered, repeated, of the wrong types or too large."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from interlock.audit.export import export_log
from interlock.audit.keys import log_verifier
from interlock.audit.service import AuditLog
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.proofs.rfc9162 import leaf_hashes, root_of
from interlock.sdk.audit import (
    MAX_LINE,
    Checkpoint,
    ExportSummary,
    NoteVerifier,
    ProofError,
    verify_csv_export,
    verify_export,
    verify_tree,
)
from tests.audit.conftest import T0, sample_entry


@pytest.mark.processes
def test_the_sdk_verifier_does_not_import_sqlalchemy() -> None:
    """``interlock.sdk.audit`` runs where only the export and the key are available."""
    code = "import sys, interlock.sdk.audit; sys.exit('sqlalchemy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0  # noqa: S603


def test_verify_tree_recomputes_the_root_of_a_complete_log() -> None:
    """Every entry from index 0: matches the head; one changed, missing or extra is refused."""
    entries = [f"entry {i}".encode() for i in range(37)]
    head = Checkpoint("example.com/audit", 37, root_of(leaf_hashes(entries)))
    verify_tree(entries, head)
    for altered in (entries[:-1], [*entries, b"x"], [b"entry 0!", *entries[1:]], entries[::-1]):
        with pytest.raises(ProofError):
            verify_tree(altered, head)


@dataclass(frozen=True)
class _Exported:
    jsonl: str
    csv: str
    note: str
    key: NoteVerifier


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> _Exported:
    """A log of 6 entries (entry 2 with a reason) exported as JSONL and CSV, and its key."""
    directory = tmp_path_factory.mktemp("export")
    settings = Settings(data_dir=directory, audit_database_url=f"sqlite:///{directory / 'a.db'}")
    log = AuditLog.open(settings, Keyring.create(directory / "keyring.json"), witnesses=[])
    try:
        for i in range(6):
            reason = "refused:\nline two, with a comma" if i == 2 else None
            log.sink.record(sample_entry(i, reason=reason))
        texts = {}
        for fmt in ("jsonl", "csv"):
            out = io.StringIO(newline="")
            report = export_log(
                log.store.engine, out, start=T0, end=T0 + timedelta(days=1), fmt=fmt
            )
            texts[fmt] = out.getvalue()
        key = log_verifier(log.store.engine)
    finally:
        log.close()
    assert key is not None
    return _Exported(texts["jsonl"], texts["csv"], report.checkpoint, key)


def _csv(exported: _Exported, text: str | None = None) -> ExportSummary:
    return verify_csv_export(io.StringIO(text or exported.csv, newline=""), exported.note,
                             [exported.key])  # fmt: skip


def _rows(exported: _Exported) -> list[list[str]]:
    return list(csv.reader(io.StringIO(exported.csv, newline="")))


def _write(rows: list[list[str]]) -> str:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def test_both_exports_verify(exported: _Exported) -> None:
    """The baseline: an untouched export of each format verifies, entry 2's reason included."""
    assert verify_export(io.StringIO(exported.jsonl), [exported.key]).entries == 6
    assert _csv(exported).entries == 6


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "client:someone-else"), ("result", "failure"), ("status", "403"),
     ("correlation_id", "req-XYZ"), ("reason", "refused"), ("time", "2025-01-02")],
)  # fmt: skip
def test_a_csv_export_with_a_readable_cell_changed_is_refused(
    exported: _Exported, column: str, value: str
) -> None:
    """The columns people read must say what the proven entry says."""
    rows = _rows(exported)
    rows[3][rows[0].index(column)] = value
    with pytest.raises(ProofError, match=f"row 4: the {column} column"):
        _csv(exported, _write(rows))


def test_a_csv_export_with_a_repeated_row_is_refused(exported: _Exported) -> None:
    """One proven row, repeated 50 times, is not 50 entries: indexes strictly increase."""
    rows = _rows(exported)
    with pytest.raises(ProofError, match="not in log order"):
        _csv(exported, _write([rows[0], *[rows[1]] * 50]))


def test_a_csv_export_with_another_header_is_refused(exported: _Exported) -> None:
    """A column renamed, added or dropped: the header is the export's, exactly."""
    rows = _rows(exported)
    with pytest.raises(ProofError, match="header"):
        _csv(exported, _write([[*rows[0], "extra"], *rows[1:]]))


def _lines(exported: _Exported) -> list[str]:
    return exported.jsonl.splitlines(keepends=True)


def test_a_jsonl_line_repeating_a_member_is_refused(exported: _Exported) -> None:
    """Two "entry" members (a forged first, the real last): parsers disagree, so refuse it."""
    header, first, *rest = _lines(exported)
    real = json.loads(first)
    forged = real["entry"].replace('"status":200', '"status":403')
    twice = first.replace(
        '{"type": "entry",', '{"type": "entry", "entry": ' + json.dumps(forged) + ",", 1
    )
    with pytest.raises(ProofError, match="repeats the member 'entry'"):
        verify_export(io.StringIO(header + twice + "".join(rest)), [exported.key])
    header_twice = header.replace('{"format"', '{"checkpoint": "x", "format"', 1)
    with pytest.raises(ProofError, match="repeats the member 'checkpoint'"):
        verify_export(io.StringIO(header_twice + first), [exported.key])


_HOSTILE_RECORDS: list[dict[str, object]] = [
    {"index": "0"}, {"index": None}, {"index": [0]}, {"index": True},
    {"proof": [1, 2]}, {"proof": [None]}, {"proof": 5}, {"proof": True}, {"proof": "abc"},
    {"leaf_hash": {"a": 1}}, {"leaf_hash": None}, {"entry": 5}, {"entry": ["x"]},
]  # fmt: skip


@pytest.mark.parametrize("changes", _HOSTILE_RECORDS, ids=str)
def test_a_record_of_the_wrong_types_is_one_proof_error(
    exported: _Exported, changes: dict[str, object]
) -> None:
    """Wrong types for index, proof, leaf_hash or entry: ProofError, never a TypeError."""
    header, first, *_ = _lines(exported)
    record = json.dumps({**json.loads(first), **changes}) + "\n"
    with pytest.raises(ProofError, match="line 2"):
        verify_export(io.StringIO(header + record), [exported.key])


@pytest.mark.parametrize(
    "line",
    ['{"a":' * 10_000 + "1" + "}" * 10_000, "[" * 30_000 + "]" * 30_000, '{"index": NaN}'],
    ids=["deep object", "deep array", "NaN"],
)
def test_deeply_nested_or_non_json_lines_are_one_proof_error(
    exported: _Exported, line: str
) -> None:
    """Nesting 10,000 deep within the line limit: ProofError, never a RecursionError."""
    header = _lines(exported)[0]
    with pytest.raises(ProofError, match="line 2"):
        verify_export(io.StringIO(header + line + "\n"), [exported.key])


def test_a_csv_field_over_the_csv_limit_is_one_proof_error(exported: _Exported) -> None:
    """A field longer than the csv module allows: ProofError, never csv.Error."""
    header = exported.csv.splitlines()[0]
    text = header + '\n0,"' + "A\n" * 70_000 + '"\n'
    with pytest.raises(ProofError):
        _csv(exported, text)


class _Counting:
    """A text stream that remembers the longest piece any read handed out."""

    def __init__(self, text: str) -> None:
        self.stream = io.StringIO(text, newline="")
        self.longest = 0

    def readline(self, size: int = -1, /) -> str:
        return self._seen(self.stream.readline(size))

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return self._seen(next(self.stream))

    def _seen(self, piece: str) -> str:
        self.longest = max(self.longest, len(piece))
        return piece


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_overlong_line_is_refused_after_reading_at_most_the_limit(
    exported: _Exported, fmt: str
) -> None:
    """A line of 10 times the limit: refused as too long, and never read whole into memory."""
    header = (exported.jsonl if fmt == "jsonl" else exported.csv).splitlines(keepends=True)[0]
    stream = _Counting(header + "a" * (MAX_LINE * 10) + "\n")

    def check() -> ExportSummary:
        if fmt == "jsonl":
            return verify_export(stream, [exported.key])
        return verify_csv_export(stream, exported.note, [exported.key])

    with pytest.raises(ProofError, match="too long"):
        check()
    assert stream.longest <= MAX_LINE + 1
