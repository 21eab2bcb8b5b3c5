"""``interlock privacy``: the GDPR view of the deployment (a face: no rules here).

``privacy drift`` exit status: 0 when no undeclared flow was seen, 1 when
some was, 2 for usage errors and anything that prevents an honest report (a
bad option, a manifest that does not load, no audit log, a log that fails
verification), so automation can tell drift from "could not tell".

``privacy trace`` exit status: 0 with a report (the person seen or not), 2
for an unknown kind, a malformed identifier or anything else that prevents
one. The identifier is never printed, not even in an error.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from interlock.cli import privacy_requests
from interlock.cli.context import console, settings
from interlock.cli.options import ManifestOption
from interlock.cli.output import Col, JsonOption, iso, print_json, print_table, table
from interlock.config.units import parse_duration
from interlock.errors import InterlockError, InvalidRequestError

if TYPE_CHECKING:
    from interlock.privacy.drift import DriftReport
    from interlock.privacy.trace import TraceReport

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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (same as --format json).")
    ] = False,
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
    if as_json or output_format is OutputFormat.json:
        print_json(report.as_json())
    else:
        _print(report)
    if report.undeclared:
        raise typer.Exit(1)


def _report(manifest: Path | None, since: str) -> DriftReport:
    from interlock.audit.witness import configured_witness
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
    store = log_store(current)
    try:
        witnessed = configured_witness(current.audit_witness_file, store.size())
        return find_drift(store.engine, declared, since=period, witnessed=witnessed)
    finally:
        store.dispose()


def _usage(message: str, code: str) -> NoReturn:
    typer.echo(f"interlock: error[{code}]: {' '.join(message.split())}", err=True)
    raise typer.Exit(2)


def _table(title: str, columns: tuple[str | Col, ...]) -> Table:
    # Names and values (routes, systems) are identifiers: never cut (output.table).
    return table(title, *columns)


_INTEGRATION = Col("integration", identifier=True)
_VALUE = Col("value", identifier=True)


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
        ("kind", _INTEGRATION, _VALUE, "requests", "first seen", "last seen"),
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
    unused = _table("Declared but not used", ("kind", _INTEGRATION, _VALUE, "note"))
    for n in report.unused:
        unused.add_row(
            n.kind, n.integration, n.value, "" if n.certain else "pruned entries not read"
        )
    volumes = _table(
        "Volumes per integration",
        (_INTEGRATION, "declared", "forwarded", "refused", "records", "bytes", "pruned"),
    )
    for v in report.volumes:
        volumes.add_row(
            v.integration,
            "yes" if v.declared else "NO",
            *(str(n) for n in (v.forwarded, v.refused, v.records, v.bytes, v.pruned)),
        )
    for result, rows in ((undeclared, report.undeclared), (unused, report.unused)):
        if rows:
            print_table(result)
        else:
            console.print(f"{result.title}: none")
    print_table(volumes)
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


_MAX_IDENTIFIER_INPUT = 4096  # bytes read from standard input for ``-``


@app.command("trace")
def trace(
    subject: Annotated[
        str,
        typer.Argument(
            help="The person's identifier (an email address, phone number, customer id). "
            "Shell history and the process list keep command lines: pass - to read it "
            "from standard input instead.",
            show_default=False,
        ),
    ],
    kind: Annotated[
        str,
        typer.Option(
            "--kind", "-k", help="The identifier's kind, as the manifest's locators name it."
        ),
    ] = "email",
    region: Annotated[
        str | None,
        typer.Option("--region", help="Country (ISO 3166-1, e.g. DE) of a national phone number."),
    ] = None,
    as_json: JsonOption = False,
    manifest: ManifestOption = None,
) -> None:
    """Every system that received this person's data through an integration (GDPR Art. 15).

    Per system: when, through which integrations and routes, the declared purposes,
    legal bases, categories, recipients, retention, location and transfer safeguards,
    and the audit entries with their inclusion proofs (--json). The identifier is
    hashed with the deployment's lineage key and never printed. Exit 0 whether or
    not the person was seen; 2 for an unknown kind or a malformed identifier.
    """
    try:
        value = _read_identifier(subject)
        report = _trace(manifest, kind, value, region)
    except InterlockError as exc:
        _usage(exc.message, exc.code)
    if as_json:
        print_json(report.as_json())
    else:
        _print_trace(report)


def _read_identifier(subject: str) -> str:
    if subject != "-":
        return subject
    data = sys.stdin.buffer.read(_MAX_IDENTIFIER_INPUT + 1)
    if len(data) > _MAX_IDENTIFIER_INPUT:
        raise InvalidRequestError("the identifier read from standard input is too long")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("the identifier read from standard input is not UTF-8") from None
    return text.removesuffix("\n").removesuffix("\r")


def _trace(manifest: Path | None, kind: str, value: str, region: str | None) -> TraceReport:
    from interlock.cli.audit import log_store
    from interlock.config.loader import load_manifest
    from interlock.gdpr.identifiers import normalise
    from interlock.privacy.lineage import LineageIndex, load_subject_hasher
    from interlock.privacy.trace import check_kind, trace_subject
    from interlock.store import open_deployment

    current = settings()
    declared = load_manifest(manifest or current.manifest)
    check_kind(declared, kind)  # before the value is looked at
    normalised = normalise(kind, value, region=region)
    deployment = open_deployment(current)
    try:
        hasher = load_subject_hasher(deployment.engine, deployment.keyring)
        lineage = LineageIndex(deployment.engine, hasher)
        try:
            store = log_store(current)
        except InvalidRequestError as exc:  # no audit log yet: indexes without proofs
            typer.echo(f"interlock: warning: {exc.message}; no inclusion proofs", err=True)
            return trace_subject(declared, lineage, hasher, None, kind, normalised)
        try:
            return trace_subject(declared, lineage, hasher, store.engine, kind, normalised)
        finally:
            store.dispose()
    finally:
        deployment.close()


def _print_trace(report: TraceReport) -> None:
    count = len(report.systems)
    console.print(
        f"{report.kind} (lineage hash {report.subject.hex()[:16]}…): "
        + (
            f"{count} system{'' if count == 1 else 's'} received this person's data"
            if count
            else "no system received this person's data (within the integrations' retention)"
        ),
        soft_wrap=True,
    )
    for system in report.systems:
        where = system.location or "location not declared"
        owner = f", owner {system.owner}" if system.owner else ""
        flows = _table(
            f"{system.system} ({where}{owner}): {system.requests} request"
            f"{'' if system.requests == 1 else 's'}, {_second(iso(system.first_seen))} to "
            f"{_second(iso(system.last_seen))}",
            (_INTEGRATION, "routes", "from", "categories", "purpose", "legal basis",
             "retention", "recipients"),
        )  # fmt: skip
        for flow in system.integrations:
            flows.add_row(
                flow.integration if flow.declared else f"{flow.integration} (no longer declared)",
                "\n".join(flow.routes),
                flow.source if flow.target == system.system else flow.target,
                "\n".join(flow.categories),
                flow.purpose or "-",
                f"{flow.legal_basis} ({flow.legal_basis_article})" if flow.legal_basis else "-",
                flow.retention or "-",
                "\n".join(flow.recipients) or "-",
            )
        print_table(flows)
        for name, transfer in system.transfers:
            console.print(
                f"  transfer to {transfer.destination} under {transfer.safeguard} "
                f"({transfer.article}) via {name}",
                soft_wrap=True,
            )
        entries = ", ".join(str(i) for i in system.audit_entries) or "none"
        console.print(f"  audit entries: {entries}", soft_wrap=True)
    if report.evidence is not None:
        console.print(
            f"inclusion proofs against the signed tree head of size {report.evidence.size} "
            "(--json to export them)",
            soft_wrap=True,
        )
    from interlock.privacy.trace import AUTOMATED_DECISIONS, COMPLAINT, RIGHTS

    for statement in (RIGHTS, COMPLAINT, AUTOMATED_DECISIONS):
        console.print(statement, soft_wrap=True)
