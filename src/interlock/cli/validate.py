"""``interlock validate [FILE]``: every error in a manifest at once, located.

Without FILE it checks the manifest ``serve`` and ``keys`` use: ``INTERLOCK_MANIFEST``,
or ``./interlock.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interlock.cli.context import settings
from interlock.config.loader import check_manifest
from interlock.validation.artifacts import route_artifacts

__all__ = ["validate"]


def validate(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="The manifest to check (default: INTERLOCK_MANIFEST or ./interlock.yaml).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check a manifest (and compile its schemas); print OK, or FILE:LINE:COL: path: message."""
    if file is None:
        file = settings().manifest
    report = check_manifest(file, route_artifacts)
    for diagnostic in sorted(
        (*report.errors, *report.warnings), key=lambda d: (d.line, d.column, d.severity)
    ):
        typer.echo(str(diagnostic))
    if report.errors:
        typer.echo(
            f"{file}: {_count(len(report.errors), 'error')}, "
            f"{_count(len(report.warnings), 'warning')}",
            err=True,
        )
        raise typer.Exit(1)
    suffix = f" ({_count(len(report.warnings), 'warning')})" if report.warnings else ""
    typer.echo(f"OK{suffix}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
