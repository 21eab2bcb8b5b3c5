"""``interlock scan PATH``: hardcoded secrets and insecure switches, for people and CI.

Exit status: 0 clean, 1 findings, 2 usage errors (bad option, unreadable or
malformed baseline). Needs no deployment: it runs on a fresh checkout.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from interlock.scan import (
    BASELINE_NAME,
    ScanInputError,
    load_baseline,
    to_json,
    to_sarif,
    to_text,
    write_baseline,
)
from interlock.scan import (
    scan as run_scan,
)
from interlock.scan.baseline import Baseline

__all__ = ["scan"]


class OutputFormat(StrEnum):
    """How findings are printed."""

    text = "text"
    json = "json"
    sarif = "sarif"


def scan(  # noqa: PLR0917  (typer maps each parameter to an option)
    path: Annotated[
        Path, typer.Argument(exists=True, readable=True, help="Directory or file to scan.")
    ] = Path(),
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="text, json or sarif (2.1.0).")
    ] = OutputFormat.text,
    baseline: Annotated[
        Path | None,
        typer.Option(help=f"Baseline file (default: PATH/{BASELINE_NAME})."),
    ] = None,
    write: Annotated[
        bool,
        typer.Option("--write-baseline", help="Accept every current finding into the baseline."),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(
            help="Why the findings accepted by --write-baseline are not leaks (required)."
        ),
    ] = None,
    max_bytes: Annotated[
        int, typer.Option(min=1, help="Skip files larger than this many bytes.")
    ] = 1024 * 1024,
) -> None:
    """Find hardcoded secrets and switches that turn TLS, SSH, YAML or XML safety off."""
    root = path.resolve()
    baseline_file = baseline or (root if root.is_dir() else root.parent) / BASELINE_NAME
    if write and not (reason and reason.strip()):
        _usage("--write-baseline needs --reason: say why these findings are not leaks")
    try:
        accepted = load_baseline(baseline_file)
    except ScanInputError as exc:
        _usage(exc.message, exc.code)
    if write:
        report = run_scan(root, Baseline(), max_bytes=max_bytes)
        still = {(f.rule_id, f.path, f.fingerprint) for f in report.findings}
        kept = Baseline(tuple(e for e in accepted.entries if e.key in still))
        written = write_baseline(baseline_file, kept, report.findings, str(reason).strip())
        typer.echo(f"{baseline_file}: {len(written.entries)} entries")
        return
    report = run_scan(root, accepted, max_bytes=max_bytes)
    if output_format is OutputFormat.text:
        for line in to_text(report):
            typer.echo(line)
    else:
        document = to_json(report) if output_format is OutputFormat.json else to_sarif(report)
        typer.echo(json.dumps(document, indent=2))
    if report.findings:
        raise typer.Exit(1)


def _usage(message: str, code: str = "usage") -> NoReturn:
    typer.echo(f"interlock: error[{code}]: {' '.join(message.split())}", err=True)
    raise typer.Exit(2)
