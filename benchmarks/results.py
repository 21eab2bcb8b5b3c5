"""One way for every benchmark to report a ratio: a printed line and a JSON record.

Each benchmark calls :func:`report` for each figure it measures. It prints

    ratio NAME: VALUE (target >= TARGET) met|missed

and, when ``INTERLOCK_BENCH_RESULTS`` names a file, appends the same figure
to it as one JSON line; ``make bench`` sets it, collects the lines of every
benchmark into one results file and generates ``docs/performance.md`` from it.

Rules the helper enforces so that no figure misleads:

- *met* is decided on the unrounded value, and the printed value never
  rounds across the target: a missed 0.497 against 0.5 prints ``0.497``,
  never ``0.50``.
- A figure the algorithm fixes (a proof size, a round-trip count) is a
  ``property`` check, not a speed; accuracy figures (precision, recall) are
  ``quality``.
- ``peer`` names the other side *with its configuration* (``"nginx 1.22
  proxy_pass, 1 worker"``, ``"limits 5.x sliding-window counter"``), so a
  reader knows what the ratio compares against.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final, Literal, NoReturn

__all__ = ["RESULTS_ENV", "SKIPPED_EXIT", "Direction", "Figure", "Kind", "report", "shown", "skip"]

RESULTS_ENV: Final = "INTERLOCK_BENCH_RESULTS"
#: The exit status of a benchmark that could not run here (a tool or service missing):
#: ``make bench`` records it as skipped, with the reason, never as silently absent.
SKIPPED_EXIT: Final = 77

Kind = Literal["speed", "quality", "property"]
Direction = Literal[">=", "<="]


@dataclass(frozen=True)
class Figure:
    """One reported figure, as written to the results file."""

    benchmark: str  # the script's folder under benchmarks/: "oauth", "gateway", ...
    name: str
    value: float
    target: float | None  # None: reported for information, no target
    direction: Direction
    kind: Kind
    peer: str  # the compared side with its configuration; "" for an absolute figure
    met: bool | None  # None when there is no target
    note: str = ""
    digits: int = 2  # as printed: docs/performance.md shows it the same way


def shown(value: float, target: float | None, direction: Direction = ">=", digits: int = 2) -> str:
    """``value`` with enough digits that its rounding never crosses ``target``."""
    if math.isinf(value) or math.isnan(value):
        return str(value)
    text = f"{value:.{digits}f}"
    if target is None:
        return text
    met = value >= target if direction == ">=" else value <= target
    for extra in range(digits, digits + 6):
        text = f"{value:.{extra}f}"
        rounded = float(text)
        if (rounded >= target if direction == ">=" else rounded <= target) == met and (
            met or rounded != target
        ):
            return text
    return repr(value)


def report(
    benchmark: str,
    name: str,
    value: float,
    *,
    target: float | None,
    peer: str,
    direction: Direction = ">=",
    kind: Kind = "speed",
    digits: int = 2,
    note: str = "",
) -> Figure:
    """Print the ``ratio`` line for one figure and record it for ``make bench``."""
    met = None if target is None else (value >= target if direction == ">=" else value <= target)
    figure = Figure(benchmark, name, value, target, direction, kind, peer, met, note, digits)
    line = f"ratio {name}: {shown(value, target, direction, digits)}"
    if target is not None:
        line += f" (target {direction} {target:g}) {'met' if met else 'missed'}"
    if peer:
        line += f"  [vs {peer}]"
    print(line, flush=True)
    _record(asdict(figure))
    return figure


def skip(benchmark: str, reason: str) -> NoReturn:
    """Stop a benchmark that cannot run here; ``make bench`` records it as skipped with ``reason``."""
    print(f"skipped {benchmark}: {reason}", flush=True)
    _record({"benchmark": benchmark, "skipped": reason})
    sys.exit(SKIPPED_EXIT)


def _record(record: dict[str, object]) -> None:
    destination = os.environ.get(RESULTS_ENV)
    if destination:
        with Path(destination).open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, sort_keys=True) + "\n")
