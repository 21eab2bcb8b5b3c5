"""The layout of ``interlock audit export``: written by the log, checked by the offline verifier.

Both sides take it from here, so the CSV's readable columns the verifier
rebuilds from each proven entry are exactly the ones the exporter wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = ["CSV_COLUMNS", "FORMAT", "csv_row"]

FORMAT: Final = "interlock-audit-export/1"
CSV_COLUMNS: Final = (
    "index", "time", "actor", "action", "integration", "source", "target", "data_categories",
    "records", "bytes", "result", "status", "correlation_id", "reason", "leaf_hash", "proof",
    "entry",
)  # fmt: skip


def csv_row(
    index: int, leaf_hash: str, proof: Sequence[str], entry: str | None, fields: Mapping[str, Any]
) -> list[str]:
    """One CSV row: ``fields`` (the decoded ``entry``; empty when pruned) for reading, then
    the index, base64 leaf hash, proof and entry text for checking."""
    volume, outcome = fields.get("volume") or {}, fields.get("outcome") or {}
    readable = [
        fields.get("time", ""),
        fields.get("actor", ""),
        fields.get("action", ""),
        fields.get("integration") or "",
        fields.get("source") or "",
        fields.get("target") or "",
        " ".join(fields.get("data_categories", [])),
        volume.get("records", ""),
        volume.get("bytes", ""),
        outcome.get("result", "pruned" if not fields else ""),
        "" if outcome.get("status") is None else outcome["status"],
        fields.get("correlation_id") or "",
        fields.get("reason") or "",
    ]
    return [
        str(index),
        *(str(value) for value in readable),
        leaf_hash,
        " ".join(proof),
        entry or "",
    ]
