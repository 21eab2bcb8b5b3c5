"""The baseline: accepted findings, each by rule, path and fingerprint, with a reason.

A JSON file at the repository root (``.interlock-scan-baseline.json``)::

    {"version": 1, "entries": [
      {"rule": "generic-secret", "path": "tests/data/x.json",
       "fingerprint": "9f2c...", "reason": "RFC 9421 B.1.5 published test secret"}]}

An entry suppresses exactly the finding with its rule, path and fingerprint
(the fingerprint hashes the value, so a different secret on the same line is
still reported). The file never holds a secret. Every entry needs a reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from interlock.errors import InterlockError
from interlock.scan.finding import Finding

__all__ = [
    "BASELINE_NAME",
    "Baseline",
    "BaselineEntry",
    "ScanInputError",
    "load_baseline",
    "write_baseline",
]

BASELINE_NAME: Final = ".interlock-scan-baseline.json"
_MAX_BYTES: Final = 4 * 1024 * 1024
_FIELDS: Final = ("rule", "path", "fingerprint", "reason")


class ScanInputError(InterlockError):
    """A baseline or option the scanner cannot use (the message names the file)."""

    code = "scan_input_invalid"


@dataclass(frozen=True)
class BaselineEntry:
    """One accepted finding."""

    rule: str
    path: str
    fingerprint: str
    reason: str

    @property
    def key(self) -> tuple[str, str, str]:
        """What a finding must match to be suppressed."""
        return (self.rule, self.path, self.fingerprint)


@dataclass(frozen=True)
class Baseline:
    """The accepted findings of a repository."""

    entries: tuple[BaselineEntry, ...] = ()

    def suppresses(self, finding: Finding) -> bool:
        """Whether ``finding`` is one of the accepted ones."""
        return (finding.rule_id, finding.path, finding.fingerprint) in self._keys

    @property
    def _keys(self) -> frozenset[tuple[str, str, str]]:
        return frozenset(entry.key for entry in self.entries)


def load_baseline(path: Path) -> Baseline:
    """The baseline in ``path`` (empty when the file does not exist)."""
    if not path.exists():
        return Baseline()
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ScanInputError(f"{path}: baseline larger than {_MAX_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ScanInputError(f"{path}: cannot read the baseline ({type(exc).__name__})") from exc
    except json.JSONDecodeError as exc:
        raise ScanInputError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from exc
    if (
        not isinstance(data, dict)
        or data.get("version") != 1
        or not isinstance(data.get("entries"), list)
    ):
        raise ScanInputError(f'{path}: expected {{"version": 1, "entries": [...]}}')
    return Baseline(tuple(_entry(path, index, item) for index, item in enumerate(data["entries"])))


def _entry(path: Path, index: int, item: object) -> BaselineEntry:
    if not isinstance(item, dict):
        raise ScanInputError(f"{path}: entries[{index}] is not an object")
    values = {}
    for field in _FIELDS:
        value = item.get(field)
        if not isinstance(value, str) or not value.strip():
            raise ScanInputError(
                f"{path}: entries[{index}].{field} is required (a non-empty string)"
            )
        values[field] = value
    return BaselineEntry(**values)


def write_baseline(
    path: Path, kept: Baseline, findings: Iterable[Finding], reason: str
) -> Baseline:
    """Write ``kept`` entries plus one entry per new finding (with ``reason``); return it."""
    entries = {entry.key: entry for entry in kept.entries}
    for finding in findings:
        key = (finding.rule_id, finding.path, finding.fingerprint)
        entries.setdefault(key, BaselineEntry(*key, reason=reason))
    baseline = Baseline(tuple(sorted(entries.values(), key=lambda e: e.key)))
    document = {
        "version": 1,
        "entries": [
            {field: getattr(entry, field) for field in _FIELDS} for entry in baseline.entries
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return baseline
