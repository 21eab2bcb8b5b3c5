"""``interlock manifest``: publish manifest versions to the store for replicas to follow.

``apply FILE`` validates FILE exactly as ``interlock validate`` does and
publishes its text as the next version; gateways started with
``INTERLOCK_MANIFEST_SOURCE=store`` load it within a poll interval
(docs/scale.md). The command is on the audit trail (``admin.manifest.apply``)
with the version and SHA-256 it published.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

import typer

from interlock.cli.context import settings
from interlock.cli.evidence import admin_actor, note_result
from interlock.config.loader import load_manifest
from interlock.errors import ConfigError, InvalidRequestError
from interlock.store import open_deployment
from interlock.store.manifest_versions import (
    current_version,
    manifest_sha256,
    publish_manifest,
    version_history,
)
from interlock.validation.artifacts import route_artifacts

__all__ = ["app"]

app = typer.Typer(
    help="Publish manifest versions to the store (INTERLOCK_MANIFEST_SOURCE=store).",
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


@app.command("status")
def status() -> None:
    """Show the current version: number, SHA-256, when and by whom it was applied."""
    deployment = open_deployment(settings())
    try:
        current = current_version(deployment.engine)
    finally:
        deployment.close()
    if current is None:
        typer.echo("no manifest version in the store (publish one: interlock manifest apply FILE)")
        raise typer.Exit(1)
    typer.echo(f"version  {current.version}")
    typer.echo(f"sha256   {current.sha256}")
    typer.echo(f"applied  {current.applied_at.isoformat()} by {current.applied_by}")


@app.command("history")
def history(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many.")] = 20,
) -> None:
    """List the latest versions, newest first."""
    deployment = open_deployment(settings())
    try:
        versions = version_history(deployment.engine, limit)
    finally:
        deployment.close()
    for version in versions:
        applied = version.applied_at.isoformat(timespec="seconds")
        typer.echo(f"{version.version:>5}  {version.sha256}  {applied}  {version.applied_by}")


@app.command("show")
def show(
    version: Annotated[
        int | None, typer.Argument(help="The version (default: the current one).", min=1)
    ] = None,
) -> None:
    """Print a version's text exactly as applied."""
    deployment = open_deployment(settings())
    try:
        found = current_version(deployment.engine, version)
    finally:
        deployment.close()
    if found is None:
        raise InvalidRequestError(f"no manifest version {version or ''}".rstrip())
    if manifest_sha256(found.text) != found.sha256:  # a row altered behind our back
        raise ConfigError(f"manifest version {found.version} does not match its SHA-256")
    typer.echo(found.text, nl=False)
