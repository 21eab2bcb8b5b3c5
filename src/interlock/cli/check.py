"""``interlock check``: the security checklist per integration, for people, CI and auditors.

Exit status: 0 when no unwaived item at or above ``--fail-on`` fails, 1 when
one does, 2 on bad input (an invalid manifest, with validate's located
messages; a malformed waiver file; an unknown integration; live-only options
without ``--live``). JSON, SARIF and HTML come from :mod:`interlock.check.render`,
:mod:`interlock.check.sarif` and :mod:`interlock.check.html`; ``--live`` from
:mod:`interlock.check.live`, imported only when asked for.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from enum import StrEnum
from io import StringIO
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

from interlock.check.catalogue import item
from interlock.check.html import to_html
from interlock.check.items import ITEMS
from interlock.check.render import to_json
from interlock.check.results import Finding, Scorecard, Severity
from interlock.check.run import CheckInputError, blocking, run_check
from interlock.check.sarif import to_sarif
from interlock.check.waivers import WaiverFileError, load_waivers
from interlock.cli.check_live import live_probe, load_live_findings
from interlock.cli.context import console, make_console, settings
from interlock.cli.options import ManifestOption
from interlock.config.loader import Diagnostic
from interlock.errors import ManifestError

__all__ = ["check", "status_label", "summary_table"]


class OutputFormat(StrEnum):
    """How the scorecard is written."""

    table = "table"
    json = "json"
    sarif = "sarif"
    html = "html"


class FailOn(StrEnum):
    """The lowest severity whose unwaived failure fails the run."""

    high = "high"
    medium = "medium"
    low = "low"


_SEVERITY: dict[FailOn, Severity] = {
    FailOn.high: "high",
    FailOn.medium: "medium",
    FailOn.low: "low",
}
# Text first, colour second: the status reads the same without colour (and in CI logs).
_LABELS = {
    "pass": ("pass", "green"),
    "fail": ("FAIL", "bold red"),
    "waived": ("waived", "yellow"),
    "not_applicable": ("n/a", "dim"),
    "needs_evidence": ("evidence?", "cyan"),
}


def check(  # noqa: PLR0917  (typer maps each parameter to an option)
    manifest: ManifestOption = None,
    integration: Annotated[
        str | None, typer.Option("--integration", help="Check this integration only.")
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Add live evidence: probe upstreams, gateway, audit log.")
    ] = False,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table, json, sarif (2.1.0) or html.")
    ] = OutputFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
    ] = None,
    fail_on: Annotated[
        FailOn,
        typer.Option("--fail-on", help="Exit 1 when an item of this severity or above fails."),
    ] = FailOn.high,
    waivers: Annotated[
        Path | None, typer.Option("--waivers", help="Waiver baseline file (YAML).")
    ] = None,
    source: Annotated[
        Path | None, typer.Option("--source", help="With --live: scan PATH for hardcoded secrets.")
    ] = None,
    gateway: Annotated[
        str | None,
        typer.Option("--gateway", help="With --live: the running gateway's base URL to probe."),
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option("--ca", help="With --gateway: the gateway's CA (default: DATA_DIR/ca.pem)."),
    ] = None,
) -> None:
    """Evaluate the security checklist for every integration: pass, fail, n/a or needs evidence."""
    if not live and (source is not None or gateway is not None or ca is not None):
        _usage("--source, --gateway and --ca are for live probes: add --live")
    path = manifest or settings().manifest
    today = datetime.now(UTC).date()  # one date for the waivers' cap and their expiry
    try:
        accepted = load_waivers(waivers, today=today) if waivers is not None else None
    except WaiverFileError as exc:
        _usage(exc.message, exc.code)
    renderer = _renderer(output_format)
    with ExitStack() as stack:
        probe = None
        if live:
            live_findings = load_live_findings()
            probe = stack.enter_context(
                live_probe(live_findings, gateway=gateway, source=source, ca_file=ca)
            )
        try:
            scorecard = run_check(
                path, integration=integration, waivers=accepted, live=probe, today=today
            )
        except ManifestError as exc:
            _invalid(exc)
        except CheckInputError as exc:
            _usage(exc.message, exc.code)
    _emit(renderer(scorecard), output)
    if blocking(scorecard, _SEVERITY[fail_on]):
        raise typer.Exit(1)


def status_label(finding: Finding) -> str:
    """The finding's status in words (a waived failure reads ``waived``)."""
    return _LABELS[_key(finding)][0]


def summary_table(scorecard: Scorecard) -> Table:
    """One row per integration: how many items passed, failed, need evidence, do not apply."""
    table = Table(title="Security checklist (interlock check)", title_justify="left")
    for column in ("integration", "passed", "failed", "waived", "needs evidence", "n/a"):
        table.add_column(column)
    for name, findings in _by_integration(scorecard).items():
        counts = Counter(_key(f) for f in findings)
        table.add_row(
            name,
            str(counts["pass"]),
            str(counts["fail"]),
            str(counts["waived"]),
            str(counts["needs_evidence"]),
            str(counts["not_applicable"]),
        )
    return table


def _key(finding: Finding) -> str:
    return "waived" if finding.status == "fail" and finding.waiver else finding.status


def _by_integration(scorecard: Scorecard) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = {}
    for finding in scorecard.findings:
        grouped.setdefault(finding.integration or "(deployment)", []).append(finding)
    return grouped


def _table_text(scorecard: Scorecard) -> str:
    grouped = _by_integration(scorecard)
    ids = [i.id for i in ITEMS]
    ids += sorted({f.item for f in scorecard.findings} - set(ids))
    table = Table(title=f"interlock check: {scorecard.manifest}", title_justify="left")
    table.add_column("item")
    table.add_column("severity")
    for name in grouped:
        table.add_column(name)
    for item_id in ids:
        cells = []
        for findings in grouped.values():
            mine = [f for f in findings if f.item == item_id]
            cells.append("\n".join(_cell(f) for f in mine) or "-")
        if any(cell != "-" for cell in cells):
            table.add_row(item_id, _severity(item_id), *cells)
    out = StringIO()
    # NO_COLOR: plain text, as every command's output (context.make_console).
    printer = make_console(file=out, width=console.width, force_terminal=console.is_terminal)
    printer.print(table)
    printer.print(summary_table(scorecard))
    for finding in scorecard.findings:
        if finding.status in {"fail", "needs_evidence"}:
            printer.print(_detail(finding), markup=False, highlight=False, soft_wrap=True)
    return out.getvalue()


def _cell(finding: Finding) -> str:
    label, colour = _LABELS[_key(finding)]
    return f"[{colour}]{label}[/{colour}]"


def _severity(item_id: str) -> str:
    try:
        return item(item_id).severity
    except KeyError:
        return "-"


def _detail(finding: Finding) -> str:
    where = finding.location
    at = f"{where.file}:{where.line}:{where.column}: " if where else ""
    waived = (
        f" [waived by {finding.waiver.owner} until {finding.waiver.expires}]"
        if finding.waiver
        else ""
    )
    fix = f"\n    fix: {finding.fix}" if finding.fix else ""
    return (
        f"{at}{status_label(finding)}: {finding.integration or '-'} {finding.item}: "
        f"{finding.reason}{waived}{fix}"
    )


def _renderer(output_format: OutputFormat) -> Any:
    if output_format is OutputFormat.table:
        return _table_text
    renderers: dict[OutputFormat, Callable[[Scorecard], object]] = {
        OutputFormat.json: to_json,
        # Repository-relative manifest paths, as code-scanning UIs show them.
        OutputFormat.sarif: functools.partial(to_sarif, base=Path.cwd()),
        OutputFormat.html: to_html,
    }
    render = renderers[output_format]

    def text(scorecard: Scorecard) -> str:
        result = render(scorecard)
        return result if isinstance(result, str) else json.dumps(result, indent=2) + "\n"

    return text


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        _write_whole(text, output)
    except OSError as exc:  # a missing directory, a directory as -o, no permission
        reason = exc.strerror or type(exc).__name__
        typer.echo(f"interlock: error[output]: cannot write {output}: {reason}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {output}", err=True)


def _write_whole(text: str, output: Path) -> None:
    """Written whole or not at all: a temporary file beside the target, then renamed."""
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent or Path())
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        Path(temporary).replace(output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _invalid(error: ManifestError) -> NoReturn:
    lines = [str(d) for d in error.diagnostics if isinstance(d, Diagnostic)]
    for line in lines or [error.message]:
        typer.echo(line, err=True)
    typer.echo(
        "interlock: error[manifest_invalid]: the manifest does not validate; no scorecard "
        "(run interlock validate)",
        err=True,
    )
    raise typer.Exit(2)


def _usage(message: str, code: str = "usage") -> NoReturn:
    typer.echo(f"interlock: error[{code}]: {' '.join(message.split())}", err=True)
    raise typer.Exit(2)
