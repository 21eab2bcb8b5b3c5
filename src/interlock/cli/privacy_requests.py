"""``interlock privacy request``: data-subject requests from the command line (a face).

Every rule lives in :class:`interlock.privacy.requests.PrivacyRequests`; this
module reads options, opens the deployment's parts (store, audit log, vault,
signing keys, lineage index) and prints. An identifier given as ``-`` is read
from standard input, so it stays out of shell history and process listings.
Exit status: 0 done, 2 a refused or failed command (one line on stderr).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from interlock.cli.context import console, served_anchors, settings
from interlock.cli.options import ManifestOption
from interlock.cli.output import Col, JsonOption, print_json, print_table, table
from interlock.errors import InterlockError, InvalidRequestError

if TYPE_CHECKING:
    from interlock.privacy.request_views import RequestView
    from interlock.privacy.requests import PrivacyRequests

__all__ = ["app"]

app = typer.Typer(
    help="Data-subject requests (GDPR Art. 15-17, 20): access, export, erase, rectify.",
    no_args_is_help=True,
)

_Kind = Annotated[
    str, typer.Option("--kind", "-k", help="The identifier's kind (email, phone, customer_id...).")
]
_Region = Annotated[
    str | None, typer.Option("--region", help="Country of national phone numbers (DE, FR...).")
]
_Systems = Annotated[
    list[str] | None,
    typer.Option("--system", "-s", help="Also ask this system (repeatable)."),
]
_Json = JsonOption
_Subject = Annotated[str, typer.Argument(help="The identifier, or - to read it from stdin.")]
_Id = Annotated[str, typer.Argument(help="The request's id (dsr_...).")]


def _fail(message: str, code: str) -> NoReturn:
    typer.echo(f"interlock: error[{code}]: {' '.join(message.split())}", err=True)
    raise typer.Exit(2)


def _identifier(value: str) -> str:
    if value != "-":
        return value
    line = sys.stdin.readline().strip()
    if not line:
        _fail("no identifier on standard input", "invalid_request")
    return line


@contextmanager
def _service(manifest: Path | None) -> Iterator[PrivacyRequests]:
    """The service over the deployment's store, audit log, vault, keys and lineage index."""
    from interlock.actors import Operator
    from interlock.audit.service import AuditLog
    from interlock.cli.privacy_wiring import privacy_service, request_signer
    from interlock.config.loader import load_manifest
    from interlock.gateway.privacy_runtime import PrivacyParts
    from interlock.oauth.signing_keys import SigningKeys
    from interlock.privacy.lineage import LineageIndex, load_subject_hasher
    from interlock.secrets.vault import Vault
    from interlock.store import open_deployment

    current = settings()
    declared = load_manifest(manifest or current.manifest)
    deployment = open_deployment(current)
    try:
        log = AuditLog.open(current, deployment.keyring)
        try:
            hasher = load_subject_hasher(deployment.engine, deployment.keyring)
            lineage = LineageIndex(deployment.engine, hasher)
            try:
                keys = SigningKeys(deployment.engine, deployment.keyring, current.oauth_signing_alg)
                parts = PrivacyParts(
                    engine=deployment.engine,
                    keyring=deployment.keyring,
                    audit=log.sink,
                    audit_engine=log.store.engine,
                    lineage=lineage,
                    vault=Vault(
                        deployment.engine,
                        deployment.keyring,
                        audit=log.sink,
                        resolver=Operator("system:privacy"),
                    ),
                    anchors=served_anchors(current),
                )
                yield privacy_service(parts, declared, request_signer(keys))
            finally:
                lineage.close()
        finally:
            log.close()
    finally:
        deployment.close()


def _create(  # noqa: PLR0917  (the four request verbs share it)
    kind: str,
    subject: str,
    subject_kind: str,
    region: str | None,
    systems: list[str] | None,
    as_json: bool,
    manifest: Path | None,
    corrections: dict[str, str] | None = None,
) -> None:
    from interlock.cli.evidence import admin_actor

    identifier = _identifier(subject)
    try:
        with _service(manifest) as service:
            view = service.create(
                kind,
                subject_kind,
                identifier,
                actor=admin_actor(),
                region=region,
                corrections=corrections,
                systems=systems,
            )
    except InterlockError as exc:
        _fail(exc.message, exc.code)
    _show(view, as_json)
    if not as_json:
        console.print("run `interlock privacy request run` to ask the systems")


@app.command("access")
def access(  # noqa: PLR0917  (typer maps each parameter to an option)
    subject: _Subject,
    kind: _Kind,
    region: _Region = None,
    system: _Systems = None,
    as_json: _Json = False,
    manifest: ManifestOption = None,
) -> None:
    """Open an access request (Article 15: every system's data about the person)."""
    _create("access", subject, kind, region, system, as_json, manifest)


@app.command("export")
def export_request(  # noqa: PLR0917  (typer maps each parameter to an option)
    subject: Annotated[
        str, typer.Argument(help="With --kind: the identifier (or -); with --out: a request id.")
    ],
    kind: Annotated[
        str | None, typer.Option("--kind", "-k", help="Open an export request for this kind.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write request ID's bundle here (0600).")
    ] = None,
    region: _Region = None,
    system: _Systems = None,
    as_json: _Json = False,
    manifest: ManifestOption = None,
) -> None:
    """Open a portability request (Article 20) with --kind, or write its bundle: ID --out FILE.

    The bundle holds every system's answer with a manifest of sources; it is
    personal data, written with mode 0600.
    """
    if (kind is None) == (out is None):
        _fail("give --kind to open an export request, or --out to write one's bundle", "usage")
    if out is not None:
        from interlock.cli.evidence import admin_actor

        _write(out, lambda service: service.export_bundle(subject, actor=admin_actor()), manifest)
        return
    _create("export", subject, kind or "", region, system, as_json, manifest)


@app.command("erase")
def erase(  # noqa: PLR0917  (typer maps each parameter to an option)
    subject: _Subject,
    kind: _Kind,
    region: _Region = None,
    system: _Systems = None,
    as_json: _Json = False,
    manifest: ManifestOption = None,
) -> None:
    """Open an erasure request (Article 17; every recipient is told, Article 19)."""
    _create("erase", subject, kind, region, system, as_json, manifest)


@app.command("rectify")
def rectify(  # noqa: PLR0917  (typer maps each parameter to an option)
    subject: _Subject,
    kind: _Kind,
    corrections: Annotated[
        list[str], typer.Option("--set", help="A corrected field: name=value (repeatable).")
    ],
    region: _Region = None,
    system: _Systems = None,
    as_json: _Json = False,
    manifest: ManifestOption = None,
) -> None:
    """Open a rectification request (Article 16) with the corrected fields."""
    fields: dict[str, str] = {}
    for pair in corrections:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            _fail("--set takes name=value", "invalid_request")
        fields[name] = value
    _create("rectify", subject, kind, region, system, as_json, manifest, fields)


@app.command("list")
def list_requests(
    status: Annotated[str | None, typer.Option("--status", help="open, closed or overdue.")] = None,
    as_json: _Json = False,
    manifest: ManifestOption = None,
) -> None:
    """List the requests, newest first (overdue ones marked)."""
    try:
        with _service(manifest) as service:
            views = service.list(status)
    except InterlockError as exc:
        _fail(exc.message, exc.code)
    if as_json:
        print_json({"requests": [v.as_json() for v in views]})
        return
    result = table(
        "Data-subject requests", Col("id", identifier=True), "kind", "status", "deadline", "systems"
    )
    for view in views:
        state = view.outcome or view.status
        result.add_row(
            view.id,
            view.kind,
            f"{state} OVERDUE" if view.overdue else state,
            view.deadline.date().isoformat(),
            ", ".join(f"{s.system}:{s.status}" for s in view.systems) or "-",
        )
    print_table(result)


@app.command("show")
def show(request_id: _Id, as_json: _Json = False, manifest: ManifestOption = None) -> None:
    """One request and each system's status."""
    try:
        with _service(manifest) as service:
            view = service.get(request_id)
    except InterlockError as exc:
        _fail(exc.message, exc.code)
    _show(view, as_json)


@app.command("run")
def run(
    until_done: Annotated[
        bool, typer.Option("--until-done", help="Repeat until nothing is due (or --timeout).")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds --until-done keeps going.")
    ] = 60.0,
    manifest: ManifestOption = None,
) -> None:
    """Ask the systems whose turn it is, retry what is due, close finished requests."""
    steps = 0
    try:
        with _service(manifest) as service:
            give_up = time.monotonic() + timeout
            while True:
                done = service.run_due()
                steps += done
                if not until_done or done == 0 or time.monotonic() > give_up:
                    break
                time.sleep(0.2)
    except InterlockError as exc:
        _fail(exc.message, exc.code)
    console.print(f"{steps} step{'' if steps == 1 else 's'} taken")


@app.command("extend")
def extend(
    request_id: _Id,
    months: Annotated[int, typer.Option("--months", help="1 or 2 (two in all, Art. 12(3)).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded; told to the person).")],
    manifest: ManifestOption = None,
) -> None:
    """Extend the deadline (Article 12(3)): two further months at most, with a reason."""
    from interlock.cli.evidence import admin_actor

    try:
        with _service(manifest) as service:
            view = service.extend(request_id, months=months, reason=reason, actor=admin_actor())
    except InterlockError as exc:
        _fail(exc.message, exc.code)
    console.print(f"{view.id}: deadline now {view.deadline.isoformat()}")


@app.command("confirm")
def confirm(
    request_id: _Id,
    system: Annotated[str, typer.Argument(help="The manual system acted on.")],
    status: Annotated[str, typer.Option("--status", help="done or not_found.")],
    note: Annotated[str, typer.Option("--note", help="What was done (no identifiers).")],
    manifest: ManifestOption = None,
) -> None:
    """Confirm that a system without a connector was acted on by hand."""
    from interlock.cli.evidence import admin_actor

    try:
        with _service(manifest) as service:
            view = service.confirm(request_id, system, status, actor=admin_actor(), note=note)
    except InterlockError as exc:
        _fail(exc.message, exc.code)
    _show(view, as_json=False)


@app.command("receipt")
def receipt(
    request_id: _Id,
    out: Annotated[Path, typer.Option("--out", "-o", help="Write the receipt here.")],
    manifest: ManifestOption = None,
) -> None:
    """Write the closed request's receipt (verify it with `interlock audit verify-receipt`)."""

    def document(service: PrivacyRequests) -> dict[str, Any]:
        found = service.receipt(request_id)
        if found is None:
            raise InvalidRequestError(f"request {request_id} has no receipt (is it closed?)")
        return found

    _write(out, document, manifest)


def _write(out: Path, build: Any, manifest: Path | None) -> None:
    from interlock.crypto.keyfile import write_private_file

    try:
        with _service(manifest) as service:
            document = build(service)
        write_private_file(out, (json.dumps(document, indent=2) + "\n").encode())
    except InterlockError as exc:
        _fail(exc.message, exc.code)
    console.print(f"wrote {out}")


def _show(view: RequestView, as_json: bool) -> None:
    if as_json:
        print_json(view.as_json())
        return
    state = view.outcome or view.status
    console.print(
        f"{view.id}  {view.kind} ({view.subject_kind})  {state}"
        f"{'  OVERDUE' if view.overdue else ''}  deadline {view.deadline.isoformat()}",
        soft_wrap=True,
    )
    result = table(
        None,
        Col("system", identifier=True),
        "connector",
        "status",
        Col("attempts", justify="right"),
        Col("records", justify="right"),
        "error",
    )
    for s in view.systems:
        result.add_row(
            s.system,
            s.connector,
            s.status,
            str(s.attempts),
            "-" if s.records is None else str(s.records),
            s.error or "",
        )
    print_table(result)
