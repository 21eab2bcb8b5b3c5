"""``interlock oauth``: token-signing keys."""

from __future__ import annotations

import json

import typer

from interlock.cli.context import settings
from interlock.oauth import SigningKeys
from interlock.store import open_deployment

__all__ = ["app"]

app = typer.Typer(help="OAuth 2.0: token-signing keys.", no_args_is_help=True)


@app.command("rotate-keys")
def rotate_keys() -> None:
    """Publish a new signing key now; it signs after the publish-ahead window."""
    deployment = open_deployment(settings())
    try:
        keys = SigningKeys(deployment.engine, deployment.keyring)
        keys.ensure()
        kid = keys.rotate()
        ahead = keys.timings.publish_ahead
        typer.echo(f"published key {kid}; it starts signing in {ahead}")
    finally:
        deployment.close()


@app.command("jwks")
def jwks() -> None:
    """Print the public key set the gateway publishes at /.well-known/jwks.json."""
    deployment = open_deployment(settings())
    try:
        keys = SigningKeys(deployment.engine, deployment.keyring)
        keys.ensure()
        typer.echo(json.dumps(keys.jwks(), indent=2))
    finally:
        deployment.close()
