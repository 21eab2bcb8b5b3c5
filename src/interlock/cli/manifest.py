"""``interlock manifest``: publish manifest versions to the store, and print the schema.

``apply FILE`` validates FILE exactly as ``interlock validate`` does and
publishes its text as the next version; gateways started with
``INTERLOCK_MANIFEST_SOURCE=store`` load it within a poll interval
(docs/scale.md). The command is on the audit trail (``admin.manifest.apply``)
with the version and SHA-256 it published.

``schema`` prints the manifest's JSON Schema (2020-12) shipped in the package,
generated from the manifest's models (tools/manifest_reference.py), for editors
to complete and check a manifest with (docs/manifest.md).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from interlock.cli.context import settings
from interlock.cli.evidence import admin_actor, note_result
from interlock.cli.output import JsonOption, iso, print_json
from interlock.config.loader import load_manifest
from interlock.errors import ConfigError, InvalidRequestError
from interlock.store import open_deployment
from interlock.store.manifest_versions import (
    ManifestVersion,
    current_version,
    manifest_sha256,
    publish_manifest,
    version_history,
)
from interlock.validation.artifacts import route_artifacts

__all__ = ["app"]

app = typer.Typer(
    help="Publish manifest versions to the store (INTERLOCK_MANIFEST_SOURCE=store); "
    "print the manifest's JSON Schema.",
    no_args_is_help=True,
)

#: Larger than any manifest we have seen by two orders of magnitude.
MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024


def _text(file: Path) -> str:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {file}: {exc.strerror}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise InvalidRequestError(f"{file} is over {MAX_MANIFEST_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{file} is not UTF-8 text") from None


@app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(help="The manifest (interlock.yaml) to publish.")],
) -> None:
    """Validate FILE and make it the current version every replica enforces."""
    text = _text(file)
    load_manifest(file, route_artifacts)  # every error, located; nothing published
    if _text(file) != text:
        raise ConfigError(f"{file} changed while it was validated; apply it again")
    deployment = open_deployment(settings())
    try:
        before = current_version(deployment.engine)
        published = publish_manifest(
            deployment.engine, text, actor=admin_actor().label, now=datetime.now(UTC)
        )
    finally:
        deployment.close()
    note_result(version=published.version, sha256=published.sha256)
    if before is not None and before.version == published.version:
        typer.echo(f"unchanged: version {published.version} (sha256 {published.sha256})")
        return
    typer.echo(f"manifest version {published.version} is current (sha256 {published.sha256})")


def _version_json(version: ManifestVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "sha256": version.sha256,
        "applied_at": iso(version.applied_at),
        "applied_by": version.applied_by,
    }


@app.command("status")
def status(as_json: JsonOption = False) -> None:
    """Show the current version: number, SHA-256, when and by whom it was applied."""
    deployment = open_deployment(settings())
    try:
        current = current_version(deployment.engine)
    finally:
        deployment.close()
    if current is None:
        if as_json:
            print_json({"version": None, "sha256": None, "applied_at": None, "applied_by": None})
        else:
            typer.echo(
                "no manifest version in the store (publish one: interlock manifest apply FILE)"
            )
        raise typer.Exit(1)
    if as_json:
        print_json(_version_json(current))
        return
    typer.echo(f"version  {current.version}")
    typer.echo(f"sha256   {current.sha256}")
    typer.echo(f"applied  {current.applied_at.isoformat()} by {current.applied_by}")


@app.command("history")
def history(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List the latest versions, newest first."""
    deployment = open_deployment(settings())
    try:
        versions = version_history(deployment.engine, limit)
    finally:
        deployment.close()
    if as_json:
        print_json({"versions": [_version_json(v) for v in versions]})
        return
    for version in versions:
        applied = version.applied_at.isoformat(timespec="seconds")
        typer.echo(f"{version.version:>5}  {version.sha256}  {applied}  {version.applied_by}")


@app.command("show")
def show(
    version: Annotated[
        int | None, typer.Argument(help="The version (default: the current one).", min=1)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a version's text exactly as applied (with --json: and its number, hash, author)."""
    deployment = open_deployment(settings())
    try:
        found = current_version(deployment.engine, version)
    finally:
        deployment.close()
    if found is None:
        raise InvalidRequestError(f"no manifest version {version or ''}".rstrip())
    if manifest_sha256(found.text) != found.sha256:  # a row altered behind our back
        raise ConfigError(f"manifest version {found.version} does not match its SHA-256")
    if as_json:
        print_json({**_version_json(found), "text": found.text})
        return
    typer.echo(found.text, nl=False)


SCHEMA_FILE: Final = "manifest.schema.json"


def schema_text() -> str:
    """The manifest's JSON Schema as shipped in the package (interlock/config/)."""
    return resources.files("interlock.config").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@app.command("schema")
def schema(
    out: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the schema to this file (replaced whole) instead of stdout.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Print the manifest's JSON Schema (2020-12), for editors to complete and check it.

    Name it on the manifest's first line so that editors using the YAML
    language server pick it up:
    # yaml-language-server: $schema=interlock.schema.json
    """
    text = schema_text()
    if out is None:
        typer.echo(text, nl=False)
        return
    _write_whole(out, text)
    typer.echo(f"wrote {out}", err=True)


def _write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it: never half-written."""
    directory = path.parent
    if not directory.is_dir():
        raise InvalidRequestError(f"{directory} is not a directory")
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    temporary = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        temporary.chmod(0o644)
        temporary.replace(path)  # os.replace: atomic on one file system
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
