"""``interlock oauth``: token-signing keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from interlock.cli import completion
from interlock.cli.context import settings
from interlock.cli.options import DEFAULT_LISTEN, ManifestOption
from interlock.cli.output import Col, JsonOption, iso, print_json, print_table, table
from interlock.config.loader import load_manifest
from interlock.errors import InvalidRequestError, did_you_mean
from interlock.identity.clients import require_oauth_client
from interlock.identity.grants import client_scopes
from interlock.oauth.signing_keys import SigningKeys
from interlock.oauth.tokens import TokenIssuer
from interlock.store import open_deployment

__all__ = ["app"]

app = typer.Typer(help="OAuth 2.0: token-signing keys.", no_args_is_help=True)


@app.command("rotate-keys")
def rotate_keys() -> None:
    """Publish a new signing key now (INTERLOCK_OAUTH_SIGNING_ALG); it signs after a delay."""
    settings_ = settings()
    deployment = open_deployment(settings_)
    try:
        keys = SigningKeys(deployment.engine, deployment.keyring, settings_.oauth_signing_alg)
        keys.ensure()
        kid = keys.rotate()
        ahead = keys.timings.publish_ahead
        typer.echo(f"published key {kid}; it starts signing in {ahead}")
    finally:
        deployment.close()


@app.command("token")
def token(
    client: Annotated[
        str,
        typer.Argument(
            help="A client whose auth includes oauth2.",
            autocompletion=completion.oauth_client_names,
        ),
    ],
    issuer: Annotated[
        str | None,
        typer.Option(
            "--issuer",
            help="The gateway's base URL, the token's iss and aud (default: "
            f"INTERLOCK_PUBLIC_URL, else https://{DEFAULT_LISTEN}, serve's default).",
            show_default=False,
        ),
    ] = None,
    scopes: Annotated[
        list[str] | None,
        typer.Option("--scope", "-s", help="Scope (repeat); default: all granted."),
    ] = None,
    manifest: ManifestOption = None,
) -> None:
    """Print an access token for CLIENT, for testing (no client secret needed: operator only)."""
    current = settings()
    deployment = open_deployment(current)
    try:
        loaded = load_manifest(manifest or current.manifest)
        require_oauth_client(loaded, client)
        granted = client_scopes(loaded, client)
        wanted = frozenset(scopes) if scopes else granted
        if not wanted <= granted:
            excess = sorted(wanted - granted)
            raise InvalidRequestError(
                f"client {client!r} is not granted {' '.join(excess)}"
                + did_you_mean(excess[0], granted)
            )
        keys = SigningKeys(deployment.engine, deployment.keyring, current.oauth_signing_alg)
        keys.ensure()
        lifetime = timedelta(seconds=current.oauth_token_lifetime_seconds)
        # The gateway's issuer is its public URL, else its listener's address: a token
        # for any other is refused there with nothing but "the access token is invalid".
        base = (issuer or current.public_url or f"https://{DEFAULT_LISTEN}").rstrip("/")
        issued = TokenIssuer(keys, base, lifetime).issue(client, wanted, base)
        typer.echo(
            f"issuer {base}; expires in {issued.expires_in} s; scope {issued.scope}", err=True
        )
        if issuer is None and current.public_url is None:
            typer.echo(
                "INTERLOCK_PUBLIC_URL is not set: this is serve's default listener; a gateway "
                "elsewhere refuses the token (set INTERLOCK_PUBLIC_URL or pass --issuer)",
                err=True,
            )
        typer.echo(issued.access_token)
    finally:
        deployment.close()


@app.command("jwks")
def jwks() -> None:
    """Print the public key set the gateway publishes at /.well-known/jwks.json."""
    deployment = open_deployment(settings())
    try:
        keys = SigningKeys(deployment.engine, deployment.keyring)
        keys.ensure()
        print_json(keys.jwks())
    finally:
        deployment.close()


@app.command("keys")
def list_keys(as_json: JsonOption = False) -> None:
    """The published token-signing keys: kid, algorithm, state (pending, active, retiring)."""
    deployment = open_deployment(settings())
    try:
        found = SigningKeys(deployment.engine, deployment.keyring).describe()
    finally:
        deployment.close()
    if as_json:
        print_json(
            {
                "keys": [
                    {
                        "kid": info.kid,
                        "alg": info.alg,
                        "created_at": iso(info.created_at),
                        "activates_at": iso(info.activates_at),
                        "retires_at": iso(info.retires_at),
                        "state": info.state,
                    }
                    for info in found
                ]
            }
        )
        return
    result = table(
        "Token-signing keys",
        Col("kid", identifier=True),
        "alg",
        "activates",
        "retires",
        "state",
    )
    for info in found:
        result.add_row(
            info.kid,
            info.alg,
            f"{info.activates_at:%Y-%m-%d %H:%M} UTC",
            "-" if info.retires_at is None else f"{info.retires_at:%Y-%m-%d %H:%M} UTC",
            info.state,
        )
    print_table(result)
