"""Canonical JSON for audit entries: :mod:`interlock.proofs.canonical`, under the audit name.

The encoder lives in the foundation so that the offline verifier
(:mod:`interlock.sdk`) recomputes exactly the bytes the log hashed; audit code
keeps importing it from here.
"""

from __future__ import annotations

from interlock.proofs.canonical import (
    MAX_DEPTH,
    MAX_ENTRY_BYTES,
    JsonValue,
    canonical_json,
    scalar,
    string,
    utf8,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_ENTRY_BYTES",
    "JsonValue",
    "canonical_json",
    "scalar",
    "string",
    "utf8",
]
