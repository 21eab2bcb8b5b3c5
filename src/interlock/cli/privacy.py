"""``interlock privacy``: the GDPR view of the deployment (a face: no rules here).

``privacy drift`` exit status: 0 when no undeclared flow was seen, 1 when
some was, 2 for usage errors and anything that prevents an honest report (a
bad option, a manifest that does not load, no audit log, a log that fails
verification), so automation can tell drift from "could not tell".
"""

from __future__ import annotations

import json
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from interlock.cli import privacy_requests
from interlock.cli.context import console, settings
from interlock.cli.options import ManifestOption
from interlock.config.units import parse_duration
from interlock.errors import InterlockError, InvalidRequestError

if TYPE_CHECKING:
    from interlock.privacy.drift import DriftReport

__all__ = ["app"]

app = typer.Typer(
    help="GDPR: the flows the gateway enforces and observes, against what is declared.",
    no_args_is_help=True,
)
app.add_typer(privacy_requests.app, name="request")


class OutputFormat(StrEnum):
    """How a report is printed."""

    text = "text"
    json = "json"


@app.command("drift")
def drift(
    manifest: ManifestOption = None,
    since: Annotated[
        str, typer.Option("--since", help="How far back to read the audit trail (30d, PT12H).")
    ] = "30d",
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="text or json.")
    ] = OutputFormat.text,
) -> None:
    """Compare the flows on the audit trail with the manifest; exit 1 on undeclared flows.

    Lists flows observed but not declared, declared flows never used in the
    window (candidates for removal) and volumes per integration. The log is
    verified first; a log that fails verification gets no report (exit 2).
    """
    try:
        report = _report(manifest, since)
    except InterlockError as exc:
        _usage(exc.message, exc.code)
    if output_format is OutputFormat.json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        _print(report)
    if report.undeclared:
        raise typer.Exit(1)


def _report(manifest: Path | None, since: str) -> DriftReport:
    from interlock.audit.witness import read_witness_file
    from interlock.cli.audit import log_store
    from interlock.config.loader import load_manifest
    from interlock.privacy.drift import find_drift

    try:
        period = parse_duration(since)
    except ValueError as exc:
        raise InvalidRequestError(f"--since: {exc}") from None
    if period <= timedelta(0):
        raise InvalidRequestError(f"--since: {since!r} is not a positive duration")
    current = settings()
    declared = load_manifest(manifest or current.manifest)
    witness = current.audit_witness_file
    witnessed = [read_witness_file(witness)] if witness is not None and witness.exists() else []
    store = log_store(current)
    try:
        return find_drift(store.engine, declared, since=period, witnessed=witnessed)
    finally:
        store.dispose()


def _usage(message: str, code: str) -> NoReturn:
    typer.echo(f"interlock: error[{code}]: {' '.join(message.split())}", err=True)
    raise typer.Exit(2)


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        # Names and routes are identifiers: folded, never cut with an ellipsis.
        table.add_column(column, overflow="fold")
    return table


def _second(stamp: str) -> str:
    """``2026-12-04T04:00:42Z``: an entry time to the second (JSON keeps the microseconds)."""
    return f"{stamp[:19]}Z" if len(stamp) > 19 else stamp


def _print(report: DriftReport) -> None:
    window = report.as_json()["window"]
    console.print(
        f"window {window['since']} to {window['until']}; audit log of {report.log.size} entries "
        f"verified ({report.log.origin})",
        soft_wrap=True,
    )
    console.print(
        f"gateway requests analysed: {report.analysed}; pruned, not analysed: {report.pruned}; "
        f"matching no integration: {report.unrouted}",
        soft_wrap=True,
    )
    undeclared = _table(
        "Observed but not declared",
        ("kind", "integration", "value", "requests", "first seen", "last seen"),
    )
    for u in report.undeclared:
        undeclared.add_row(
            u.kind,
            u.integration,
            u.value,
            str(u.requests),
            _second(u.first_seen),
            _second(u.last_seen),
        )
    unused = _table("Declared but not used", ("kind", "integration", "value", "note"))
    for n in report.unused:
        unused.add_row(
            n.kind, n.integration, n.value, "" if n.certain else "pruned entries not read"
        )
    volumes = _table(
        "Volumes per integration",
        ("integration", "declared", "forwarded", "refused", "records", "bytes", "pruned"),
    )
    for v in report.volumes:
        volumes.add_row(
            v.integration,
            "yes" if v.declared else "NO",
            *(str(n) for n in (v.forwarded, v.refused, v.records, v.bytes, v.pruned)),
        )
    for table, rows in ((undeclared, report.undeclared), (unused, report.unused)):
        if rows:
            console.print(table)
        else:
            console.print(f"{table.title}: none")
    console.print(volumes)
    count = len(report.undeclared)
    console.print(
        f"{count} undeclared flow{'' if count == 1 else 's'}" if count else "no undeclared flow"
    )


class RopaFormat(StrEnum):
    """How the Art. 30 register is written."""

    json = "json"
    csv = "csv"
    html = "html"
    md = "md"


@app.command("ropa")
def ropa(
    manifest: ManifestOption = None,
    output_format: Annotated[
        RopaFormat, typer.Option("--format", "-f", help="json, csv, html or md.")
    ] = RopaFormat.md,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
    ] = None,
) -> None:
    """Print the Record of Processing Activities (GDPR Art. 30), one record per integration.

    Generated from the manifest the gateway enforces: the security measures are the
    controls configured for each integration, each with where it is configured.
    JSON follows the schema in interlock/privacy/ropa.schema.json; CSV the ICO
    template's column order (docs/privacy.md).
    """
    from datetime import UTC, datetime

    from interlock.config.loader import load_manifest
    from interlock.privacy import ropa_render
    from interlock.privacy.ropa import build_register
    from interlock.privacy.ropa_html import to_html

    current = settings()
    path = manifest or current.manifest
    try:
        declared = load_manifest(path)
    except InterlockError as exc:
        _usage(exc.message, exc.code)
    register = build_register(
        declared, source=str(path), kek_backend=current.kek_backend, now=datetime.now(UTC)
    )
    if output_format is RopaFormat.json:
        text = json.dumps(ropa_render.to_json(register), indent=2) + "\n"
    elif output_format is RopaFormat.csv:
        text = ropa_render.to_csv(register)
    elif output_format is RopaFormat.html:
        text = to_html(register)
    else:
        text = ropa_render.to_markdown(register)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8", newline="")
        typer.echo(
            f"wrote {output_format.value} register of {len(register.records)} "
            f"integrations to {output}",
            err=True,
        )
