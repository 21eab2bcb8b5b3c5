"""``interlock keys``: API keys — create (shown once), list, rotate, revoke."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from interlock.cli.context import settings
from interlock.cli.options import ManifestOption, duration_option
from interlock.cli.output import Col, JsonOption, iso, print_json, print_table, table
from interlock.config.loader import load_manifest
from interlock.identity.apikeys import (
    DEFAULT_LIFETIME,
    DEFAULT_OVERLAP,
    ApiKeyInfo,
    ApiKeys,
    IssuedKey,
    key_id_of,
)
from interlock.store import Deployment, open_deployment

__all__ = ["app"]

app = typer.Typer(help="Create, list, rotate and revoke API keys.", no_args_is_help=True)


def _open(manifest: Path | None) -> tuple[Deployment, ApiKeys]:
    current = settings()
    deployment = open_deployment(current)
    try:
        keys = ApiKeys(
            deployment.engine, deployment.keyring, load_manifest(manifest or current.manifest)
        )
    except BaseException:
        deployment.close()
        raise
    return deployment, keys


def _show_issued(issued: IssuedKey) -> None:
    info = issued.info
    err = typer.echo
    err(f"key id   {info.id}", err=True)
    err(f"client   {info.client}", err=True)
    err(f"scopes   {' '.join(info.scopes)}", err=True)
    err(f"expires  {info.expires_at:%Y-%m-%d %H:%M} UTC", err=True)
    err("The key is shown once; store it in the consumer's secret store now.", err=True)
    typer.echo(issued.token)


@app.command("create")
def create(
    client: Annotated[str, typer.Argument(help="The client (service account) in the manifest.")],
    scopes: Annotated[
        list[str] | None,
        typer.Option(
            "--scope", "-s", help="A scope for the key (repeat); default: all of the client's."
        ),
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, e.g. 90d or P30D.")
    ] = None,
    manifest: ManifestOption = None,
) -> None:
    """Issue a key; the key goes to standard output, details to standard error."""
    deployment, keys = _open(manifest)
    try:
        wanted = [s for item in scopes for s in item.replace(",", " ").split()] if scopes else None
        _show_issued(keys.create(client, wanted, duration_option(expires) or DEFAULT_LIFETIME))
    finally:
        deployment.close()


@app.command("rotate")
def rotate(
    key: Annotated[str, typer.Argument(help="The key to replace: its id, or the key itself.")],
    overlap: Annotated[
        str | None,
        typer.Option("--overlap", help="How long the old key stays valid (default 24h)."),
    ] = None,
    manifest: ManifestOption = None,
) -> None:
    """Issue a successor; the old key keeps working for the overlap window."""
    key_id = key_id_of(key)
    deployment, keys = _open(manifest)
    try:
        issued = keys.rotate(key_id, duration_option(overlap) or DEFAULT_OVERLAP)
        old = keys.get(key_id)
        typer.echo(f"{key_id} stays valid until {old.expires_at:%Y-%m-%d %H:%M} UTC", err=True)
        _show_issued(issued)
    finally:
        deployment.close()


@app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="The key to revoke: its id, or the key itself.")],
    manifest: ManifestOption = None,
) -> None:
    """Revoke a key immediately (named by its id, or by the key; only the id is shown)."""
    key_id = key_id_of(key)
    deployment, keys = _open(manifest)
    try:
        info = keys.revoke(key_id)
        typer.echo(f"revoked {info.id} (client {info.client})")
    finally:
        deployment.close()


@app.command("list")
def list_keys(
    client: Annotated[str | None, typer.Option("--client", help="Only this client's keys.")] = None,
    manifest: ManifestOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show keys: id, client, scopes, created, expires, last used, status — never secrets."""
    deployment, keys = _open(manifest)
    try:
        now = datetime.now(UTC)
        found = keys.list_keys(client)
    finally:
        deployment.close()
    if as_json:
        print_json({"keys": [_key_json(info, now) for info in found]})
        return
    result = table(
        "API keys",
        Col("id", identifier=True),
        Col("client", identifier=True),
        "scopes",
        "created",
        "expires",
        "last used",
        "status",
    )
    for info in found:
        result.add_row(
            info.id,
            info.client,
            " ".join(info.scopes),
            f"{info.created_at:%Y-%m-%d %H:%M}",
            f"{info.expires_at:%Y-%m-%d %H:%M}",
            f"{info.last_used_at:%Y-%m-%d %H:%M}" if info.last_used_at else "never",
            info.status(now) + (f" -> {info.successor_id}" if info.successor_id else ""),
        )
    print_table(result)


def _key_json(info: ApiKeyInfo, now: datetime) -> dict[str, object]:
    return {
        "id": info.id,
        "client": info.client,
        "scopes": list(info.scopes),
        "created_at": iso(info.created_at),
        "expires_at": iso(info.expires_at),
        "last_used_at": iso(info.last_used_at),
        "revoked_at": iso(info.revoked_at),
        "successor_id": info.successor_id,
        "status": info.status(now),
    }
