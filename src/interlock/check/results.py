"""What ``interlock check`` finds: one finding per integration and checklist item.

A :class:`Finding` says whether an integration meets one item of the
checklist (:mod:`interlock.check.items`): ``pass``, ``fail``,
``not_applicable`` or ``needs_evidence`` (Interlock cannot tell from what it
has: the manual steps are in ``fix``), with the reason, the evidence used
(configuration read, or a live probe's result) and where to fix it: a place
in the manifest (file, line, column) and/or a command to run. A waived
failure keeps its status and carries the waiver. A :class:`Scorecard` is
every finding of one run; every output format (table, JSON, SARIF, HTML)
renders one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

__all__ = ["Finding", "Location", "Scorecard", "Severity", "Status", "Waiver"]

Status = Literal["pass", "fail", "not_applicable", "needs_evidence"]
Severity = Literal["high", "medium", "low"]


@dataclass(frozen=True)
class Location:
    """A place in a file: 1-based line and column (the manifest's YAML source map)."""

    file: str
    line: int
    column: int = 1


@dataclass(frozen=True)
class Waiver:
    """An accepted exception from the baseline file: why, who owns it, until when."""

    item: str
    integration: str
    reason: str
    owner: str
    expires: date


@dataclass(frozen=True)
class Finding:
    """One checklist item for one integration (``integration`` None: the deployment)."""

    item: str  # an item id of interlock.check.items, e.g. "authentication"
    integration: str | None
    status: Status
    reason: str
    evidence: tuple[str, ...] = ()
    location: Location | None = None
    fix: str | None = None  # what to change or run, in words or as a command
    live: bool = False  # from a live probe (--live), not from configuration alone
    waiver: Waiver | None = None

    @property
    def failed(self) -> bool:
        """A failure no (valid) waiver covers."""
        return self.status == "fail" and self.waiver is None


@dataclass(frozen=True)
class Scorecard:
    """Every finding of one run of ``interlock check``."""

    manifest: str
    generated: datetime
    live: bool
    findings: tuple[Finding, ...] = field(default_factory=tuple)
