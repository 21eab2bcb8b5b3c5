"""``interlock clients``: OAuth client secrets (shown once, stored as keyed hashes)."""

from __future__ import annotations

from typing import Annotated

import typer

from interlock.cli.context import settings
from interlock.cli.options import ManifestOption
from interlock.config.loader import load_manifest
from interlock.oauth.client_secrets import ClientSecrets
from interlock.store import open_deployment

__all__ = ["app"]

app = typer.Typer(help="OAuth 2.0 client secrets.", no_args_is_help=True)


@app.command("create-secret")
def create_secret(
    client: Annotated[str, typer.Argument(help="A client whose auth includes oauth2.")],
    manifest: ManifestOption = None,
) -> None:
    """Issue a secret (at most two active per client); it goes to standard output, once."""
    current = settings()
    deployment = open_deployment(current)
    try:
        secrets = ClientSecrets(
            deployment.engine, deployment.keyring, load_manifest(manifest or current.manifest)
        )
        secret_id, value = secrets.create(client)
        typer.echo(f"secret id {secret_id} for client {client}; shown once", err=True)
        typer.echo(value)
    finally:
        deployment.close()


@app.command("revoke-secret")
def revoke_secret(
    secret_id: Annotated[str, typer.Argument(help="The secret's id.")],
    manifest: ManifestOption = None,
) -> None:
    """Revoke one client secret at once."""
    current = settings()
    deployment = open_deployment(current)
    try:
        ClientSecrets(
            deployment.engine, deployment.keyring, load_manifest(manifest or current.manifest)
        ).revoke(secret_id)
        typer.echo(f"revoked client secret {secret_id}")
    finally:
        deployment.close()
