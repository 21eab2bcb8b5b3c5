"""``interlock events``: event streaming; ``events schemas ...`` is the schema registry.

* ``schemas register SUBJECT FILE`` — register a JSON Schema (2020-12) as the
  subject's next version; an incompatible one is refused with every problem,
  JSON pointer first, and exit status 1;
* ``schemas check SUBJECT FILE [--version N]`` — the same verdict, nothing stored;
* ``schemas list [SUBJECT] [--json]`` — the declared subjects (mode, versions),
  or one subject's versions and their global ids;
* ``schemas diff SUBJECT V1 V2`` — what changed between two versions, as the
  incompatibilities in each direction;
* ``schemas mode SUBJECT [MODE]`` — the subject's compatibility mode, or set it.

Registrations and mode changes are on the audit trail as ``admin:USER``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Final, cast

import typer

from interlock.audit.service import AuditLog
from interlock.cli import completion
from interlock.cli.context import settings
from interlock.cli.evidence import admin_actor
from interlock.cli.options import ManifestOption
from interlock.cli.output import Col, JsonOption, print_json, print_table, table
from interlock.config.events import COMPATIBILITY_MODES, CompatibilityMode
from interlock.config.loader import load_manifest
from interlock.config.manifest import JsonLimits
from interlock.errors import InvalidRequestError
from interlock.events.compatibility import Incompatibility, incompatibilities
from interlock.events.registry import (
    MAX_SCHEMA_BYTES,
    SchemaRegistry,
    Version,
    declared_subjects,
)
from interlock.events.registry_errors import (
    IncompatibleSchema,
    InvalidModeError,
    InvalidVersionError,
    UnknownSubjectError,
)
from interlock.store import open_deployment
from interlock.validation.json_body import parse_json

__all__ = ["app"]

app = typer.Typer(help="Event streaming: the schema registry.", no_args_is_help=True)
schemas_app = typer.Typer(
    help="Each subject's JSON Schemas, versioned under its compatibility mode.",
    no_args_is_help=True,
)
app.add_typer(schemas_app, name="schemas")

_LIMITS: Final = JsonLimits(max_depth=64, max_string_length=65536, max_members=10000)
_NUMBER: Final = re.compile(r"[1-9][0-9]{0,9}")  # as gateway.schema_api's
Subject = Annotated[
    str,
    typer.Argument(
        help="A subject the manifest declares (order.created).",
        autocompletion=completion.event_subjects,
    ),
]
SchemaFile = Annotated[Path, typer.Argument(help="A JSON Schema (2020-12) file.")]
JsonFlag = JsonOption


@contextmanager
def _registry(manifest: Path | None) -> Iterator[SchemaRegistry]:
    """The registry of the deployment's store for ``manifest``, recording on its audit trail.

    Only the subjects ``manifest`` declares exist (the gateway serves the same).
    """
    current = settings()
    loaded = load_manifest(manifest or current.manifest)
    deployment = open_deployment(current)
    try:
        log = AuditLog.open(deployment.settings, deployment.keyring)
        try:
            yield SchemaRegistry(deployment.engine, loaded, audit=log.sink)
        finally:
            log.close()
    finally:
        deployment.close()


def _schema(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (size-capped, duplicate keys refused)."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SCHEMA_BYTES * 2 + 1)
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_SCHEMA_BYTES * 2:
        raise InvalidRequestError(f"{path} is over {MAX_SCHEMA_BYTES * 2} bytes")
    value = parse_json(raw, _LIMITS)
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{path} does not hold a JSON object")
    return value


def _version(text: str) -> Version:
    if text == "latest":
        return "latest"
    # str.isdigit() takes "²" (int() then fails) and "٣" (int() reads 3): ASCII only,
    # the shape the HTTP API takes.
    if not _NUMBER.fullmatch(text):
        raise InvalidVersionError("a version is a positive integer or 'latest'")
    return int(text)


def _against(registry: SchemaRegistry, subject: str, mode: str) -> str:
    """What a registration was checked against: ``version 2 (BACKWARD)``, ``versions 1-3 (...)``."""
    versions = registry.versions(subject)
    if mode.endswith("_TRANSITIVE") and len(versions) > 1:
        return f"versions {versions[0]}-{versions[-1]} ({mode})"
    return f"version {versions[-1]} ({mode})"


def _lines(problems: Sequence[Incompatibility]) -> list[str]:
    """One line per problem, its JSON pointer first (``/`` for the root)."""
    return [f"{p.pointer or '/'}  {p.kind}  {p.message}" for p in problems]


@schemas_app.command("register")
def register(subject: Subject, file: SchemaFile, manifest: ManifestOption = None) -> None:
    """Register FILE as SUBJECT's next version (or find it there); print its version and id."""
    schema = _schema(file)
    with _registry(manifest) as registry:
        try:
            registered = registry.register(subject, schema, actor=admin_actor())
        except IncompatibleSchema as exc:
            typer.echo(f"incompatible with {_against(registry, subject, exc.mode)}:", err=True)
            for line in _lines(exc.problems):
                typer.echo(f"  {line}", err=True)
            raise
    typer.echo(f"{subject} version {registered.version} id {registered.id}")


@schemas_app.command("check")
def check(
    subject: Subject,
    file: SchemaFile,
    version: Annotated[
        str, typer.Option("--version", help="Check against this version only (default: latest).")
    ] = "latest",
    manifest: ManifestOption = None,
) -> None:
    """Would FILE be accepted as SUBJECT's next version? Exit 1 with every problem if not."""
    schema = _schema(file)
    with _registry(manifest) as registry:
        problems = registry.check(subject, schema, _version(version))
        mode = registry.mode(subject)
    if problems:
        for line in _lines(problems):
            typer.echo(line)
        raise typer.Exit(1)
    typer.echo(f"compatible ({mode})")


@schemas_app.command("list")
def list_(
    subject: Annotated[
        str | None,
        typer.Argument(
            help="Only this subject's versions.", autocompletion=completion.event_subjects
        ),
    ] = None,
    manifest: ManifestOption = None,
    as_json: JsonFlag = False,
) -> None:
    """The declared subjects with their mode and versions, or SUBJECT's versions and ids."""
    with _registry(manifest) as registry:
        if subject is None:
            declared = declared_subjects(load_manifest(manifest or settings().manifest))
            rows = _subjects(registry, sorted(declared))
        else:
            mode = registry.mode(subject)
            rows = [
                {"version": v, "id": registry.get(subject, v).id, "mode": mode}
                for v in registry.versions(subject)
            ]
    if as_json:
        print_json({"subjects": rows} if subject is None else {"versions": rows})
        return
    if subject is None:
        result = table(
            "Subjects",
            Col("subject", identifier=True),
            "mode",
            "versions",
            Col("latest id", identifier=True),
        )
        for row in rows:
            versions = ", ".join(str(v) for v in row["versions"]) or "-"
            latest = "-" if row["latest_id"] is None else str(row["latest_id"])
            result.add_row(row["subject"], row["mode"], versions, latest)
    else:
        result = table(
            f"{subject}: versions",
            Col("version", identifier=True, justify="right"),
            Col("id", identifier=True),
            "mode",
        )
        for row in rows:
            result.add_row(str(row["version"]), str(row["id"]), row["mode"])
    print_table(result)


def _subjects(registry: SchemaRegistry, declared: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in declared:
        try:
            versions = registry.versions(name)
        except UnknownSubjectError:
            versions = []
        latest = registry.get(name).id if versions else None
        rows.append(
            {
                "subject": name,
                "mode": registry.mode(name),
                "versions": versions,
                "latest_id": latest,
            }
        )
    return rows


@schemas_app.command("diff")
def diff(
    subject: Subject,
    v1: Annotated[int, typer.Argument(help="The earlier version.", min=1)],
    v2: Annotated[int, typer.Argument(help="The later version.", min=1)],
    manifest: ManifestOption = None,
    as_json: JsonFlag = False,
) -> None:
    """The changes between two versions: what breaks reading in each direction."""
    with _registry(manifest) as registry:
        old, new = registry.get(subject, v1).schema, registry.get(subject, v2).schema
    backward, forward = incompatibilities(new, old), incompatibilities(old, new)
    if as_json:
        print_json(
            {
                "subject": subject,
                "from_version": v1,
                "to_version": v2,
                "backward": [_problem_json(p) for p in backward],
                "forward": [_problem_json(p) for p in forward],
            }
        )
        return
    directions = (
        (f"v{v2} reading data of v{v1} (backward)", backward),
        (f"v{v1} reading data of v{v2} (forward)", forward),
    )
    for title, problems in directions:
        typer.echo(f"{title}: {len(problems) or 'compatible'}")
        for line in _lines(problems):
            typer.echo(f"  {line}")


def _problem_json(problem: Incompatibility) -> dict[str, str]:
    return {"pointer": problem.pointer or "/", "kind": problem.kind, "message": problem.message}


@schemas_app.command("mode")
def mode(
    subject: Subject,
    new: Annotated[
        str | None, typer.Argument(help=f"Set it: {', '.join(COMPATIBILITY_MODES)}.")
    ] = None,
    manifest: ManifestOption = None,
    as_json: JsonFlag = False,
) -> None:
    """SUBJECT's compatibility mode; with MODE, set it (for the next registrations)."""
    with _registry(manifest) as registry:
        before = registry.mode(subject)
        if new is not None:
            chosen = new.upper()
            if chosen not in COMPATIBILITY_MODES:
                modes = ", ".join(COMPATIBILITY_MODES)
                raise InvalidModeError(f"a compatibility mode is one of {modes}")
            registry.set_mode(subject, cast("CompatibilityMode", chosen), actor=admin_actor())
        current = registry.mode(subject)
    if as_json:
        print_json({"subject": subject, "mode": current, "changed": current != before})
        return
    typer.echo(current)
