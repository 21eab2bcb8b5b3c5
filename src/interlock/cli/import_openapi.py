"""``interlock import-openapi SPEC --system NAME``: routes from an OpenAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interlock.cli.context import settings
from interlock.cli.options import ManifestOption
from interlock.config import openapi
from interlock.errors import ManifestError
from interlock.validation.artifacts import route_artifacts
from interlock.validation.schema import compile_schema

__all__ = ["import_openapi"]


def import_openapi(  # noqa: PLR0917  (typer maps each parameter to an option)
    spec: Annotated[Path, typer.Argument(help="OpenAPI 3.0 or 3.1 document (YAML or JSON).")],
    system: Annotated[
        str, typer.Option("--system", help="The manifest system the operations reach.")
    ],
    integration: Annotated[
        str | None,
        typer.Option(
            "--integration",
            help="The integration that gets the routes (default: the one using the system).",
            show_default=False,
        ),
    ] = None,
    manifest: ManifestOption = None,
    scope_prefix: Annotated[
        str | None,
        typer.Option(
            "--scope-prefix",
            help="PREFIX.read / PREFIX.write when the spec names no usable scope "
            "(default: the system's name).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the generated routes; write nothing.")
    ] = False,
) -> None:
    """Generate routes and request schemas from SPEC into the manifest.

    The manifest is changed only when the result passes `interlock validate`;
    comments and order are kept. Warnings and a summary go to standard error.
    """
    try:
        plan = openapi.plan_import(
            spec,
            manifest or settings().manifest,
            system=system,
            integration=integration,
            scope_prefix=scope_prefix,
            schema_check=compile_schema,
        )
        for line in (*plan.warnings, *plan.notes):
            typer.echo(line, err=True)
        if dry_run:
            typer.echo(openapi.routes_yaml(plan.routes), nl=False)
        written = openapi.apply_import(plan, dry_run=dry_run, deep=route_artifacts)
    except ManifestError as exc:
        for diagnostic in exc.diagnostics:
            typer.echo(str(diagnostic), err=True)
        raise
    typer.echo(_summary(plan, written=written, dry_run=dry_run), err=True)


def _summary(plan: openapi.ImportPlan, *, written: bool, dry_run: bool) -> str:
    counts = (
        f"{_count(plan.added, 'route')} added, {plan.replaced} replaced, "
        f"{plan.unchanged} unchanged, {_count(len(plan.warnings), 'warning')}"
    )
    where = f"{plan.manifest} (integration {plan.integration})"
    if dry_run:
        return f"{where}: dry run, nothing written: {counts}"
    if not written:
        return f"{where}: already up to date: {counts}"
    return f"{where}: {counts}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
