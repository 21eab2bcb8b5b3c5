"""``interlock signature-keys``: clients' keys for signed requests (RFC 9421)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from interlock.cli import completion
from interlock.cli.context import settings
from interlock.cli.options import ManifestOption, duration_option
from interlock.cli.output import Col, JsonOption, iso, print_json, print_table, table, when
from interlock.config.loader import load_manifest
from interlock.crypto.keyfile import read_small_file
from interlock.errors import InvalidRequestError
from interlock.identity.client_keys import ClientKeyInfo, ClientKeys
from interlock.identity.public_keys import jwk_from_pem
from interlock.store import open_deployment

__all__ = ["app"]

_MAX_PEM = 16384

app = typer.Typer(
    help="Keys that clients sign requests with (RFC 9421), for routes with a replay policy.",
    no_args_is_help=True,
)


@contextmanager
def _open(manifest: Path | None) -> Iterator[ClientKeys]:
    current = settings()
    deployment = open_deployment(current)
    try:
        loaded = load_manifest(manifest or current.manifest)
        yield ClientKeys(deployment.engine, deployment.keyring, loaded)
    finally:
        deployment.close()


def _when(value: datetime | None) -> str:
    return when(value, "never")


@app.command("create")
def create(
    client: Annotated[
        str,
        typer.Argument(help="A client of the manifest.", autocompletion=completion.client_names),
    ],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="Register this Ed25519 or EC P-256 public key (PEM); its keyid is printed.",
            show_default=False,
        ),
    ] = None,
    hmac: Annotated[
        bool,
        typer.Option(
            "--hmac",
            help="Generate an HMAC-SHA256 secret instead, printed once (base64) on stdout.",
        ),
    ] = False,
    lifetime: Annotated[
        str | None,
        typer.Option("--lifetime", help="e.g. 365d (default: no expiry).", show_default=False),
    ] = None,
    manifest: ManifestOption = None,
) -> None:
    """Register a public key, or generate a shared secret, for CLIENT to sign requests with."""
    if (public_key is None) == (not hmac):
        raise InvalidRequestError("give exactly one of --public-key FILE and --hmac")
    valid_for = duration_option(lifetime)
    expires_at = datetime.now(UTC) + valid_for if valid_for else None
    with _open(manifest) as keys:
        if public_key is not None:
            jwk = jwk_from_pem(read_small_file(public_key, _MAX_PEM))
            keyid = keys.register(client, jwk, use="signature", expires_at=expires_at)
            typer.echo(f"registered signature key for client {client}", err=True)
            typer.echo(f"expires   {_when(expires_at)}", err=True)
            typer.echo(f"Sign with keyid {keyid}", err=True)
            typer.echo(keyid)
            return
        issued = keys.create_shared_secret(client, expires_at=expires_at)
        # The secret alone goes to standard output; everything else to standard error.
        typer.echo(f"HMAC-SHA256 key {issued.keyid} for client {client}; shown once", err=True)
        typer.echo(f"expires   {_when(expires_at)}", err=True)
        typer.echo(
            f"Sign with keyid {issued.keyid}. Store the secret in the client's secret store "
            "now; it cannot be shown again.",
            err=True,
        )
        typer.echo(issued.secret)


@app.command("list")
def list_keys(
    client: Annotated[
        str | None,
        typer.Argument(help="Only this client's keys.", autocompletion=completion.client_names),
    ] = None,
    manifest: ManifestOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every signature key (never a secret): keyid, client, algorithm, state."""
    with _open(manifest) as keys:
        infos = keys.list_keys(client, use="signature")
    if as_json:
        print_json({"keys": [_key_json(info) for info in infos]})
        return
    result = table(
        None,
        Col("keyid", identifier=True),
        Col("client", identifier=True),
        "alg",
        "created",
        "expires",
        "state",
    )
    for info in infos:
        result.add_row(
            info.kid,
            info.client,
            info.alg,
            _when(info.created_at),
            _when(info.expires_at),
            _state(info),
        )
    print_table(result)


def _state(info: ClientKeyInfo) -> str:
    return "active" if info.active else ("revoked" if info.revoked_at else "expired")


def _key_json(info: ClientKeyInfo) -> dict[str, object]:
    return {
        "keyid": info.kid,
        "client": info.client,
        "alg": info.alg,
        "created_at": iso(info.created_at),
        "expires_at": iso(info.expires_at),
        "revoked_at": iso(info.revoked_at),
        "state": _state(info),
    }


@app.command("revoke")
def revoke(
    keyid: Annotated[
        str, typer.Argument(help="The keyid; put -- before one that starts with '-'.")
    ],
    manifest: ManifestOption = None,
) -> None:
    """Revoke one signature key; every gateway refuses it within a second."""
    with _open(manifest) as keys:
        info = keys.revoke(keyid, "signature")
    typer.echo(f"revoked signature key {info.kid} (client {info.client})")
