"""What a scan reports: rules, findings, and how a matched value is shown.

A finding never carries the matched secret in clear: only a masked form (a
few leading characters and the length) and a fingerprint, a truncated
SHA-256 of the rule and the value, stable across line moves so a baseline
entry survives edits around it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["Finding", "Kind", "Level", "Match", "fingerprint", "mask"]

Level = Literal["error", "warning", "note"]  # SARIF 2.1.0 §3.27.10 result.level
Kind = Literal["secret", "switch"]
_FINGERPRINT_HEX: Final = 24  # 96 bits: unique per repository, not a copy of the value


@dataclass(frozen=True)
class Match:
    """One raw hit of a detector in one file (1-based line and column)."""

    rule_id: str
    line: int
    column: int
    value: str  # the secret, or for a switch the offending source text
    level: Level | None = None  # None: the rule's default level


@dataclass(frozen=True)
class Finding:
    """A reportable hit: located, masked and fingerprinted."""

    rule_id: str
    kind: Kind
    level: Level
    path: str  # POSIX path relative to the scanned root
    line: int
    column: int
    message: str
    shown: str  # the masked secret, or the switch's source text
    fingerprint: str

    def __repr__(self) -> str:
        return f"Finding({self.rule_id!r}, {self.path!r}, line={self.line}, shown={self.shown!r})"


def fingerprint(rule_id: str, value: str) -> str:
    """Truncated SHA-256 of rule and value: identifies the match, never reveals it."""
    digest = hashlib.sha256(f"interlock-scan/v1\0{rule_id}\0{value}".encode()).hexdigest()
    return digest[:_FINGERPRINT_HEX]


def mask(value: str) -> str:
    """All but a few leading characters hidden: ``ghp_****...`` plus the length.

    At most a quarter of the value (and never more than 4 characters) is shown,
    so a short password does not leak half of itself.
    """
    shown = min(4, len(value) // 4)
    return f"{value[:shown]}{'*' * 4} ({len(value)} chars)"
