"""``interlock secrets``: store outbound credentials (values never printed)."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from interlock.cli.context import settings
from interlock.errors import InvalidRequestError
from interlock.secrets.store import MAX_SECRET_BYTES, SecretStore
from interlock.store import open_deployment

__all__ = ["app"]

app = typer.Typer(
    help="Store the credentials Interlock uses towards systems.", no_args_is_help=True
)


@app.command("put")
def put(name: Annotated[str, typer.Argument(help="Secret name, e.g. erp/api-key.")]) -> None:
    """Store a new value for NAME, read from standard input (or a hidden prompt).

    Never pass a secret as a command-line argument: it would be visible in the
    process list and shell history.
    """
    if sys.stdin.isatty():
        value = getpass.getpass(f"value for {name}: ").encode()
    else:
        value = sys.stdin.buffer.read(MAX_SECRET_BYTES + 1)
        if value.endswith(b"\n"):  # what `echo` and here-strings add
            value = value[:-1].removesuffix(b"\r")
    if not value:
        raise InvalidRequestError("no value on standard input")
    deployment = open_deployment(settings())
    try:
        version = SecretStore(deployment.engine, deployment.keyring).put(name, value)
        typer.echo(f"stored secret://{name} (version {version})")
    finally:
        deployment.close()


@app.command("list")
def list_secrets() -> None:
    """Names and versions of stored secrets (never values)."""
    deployment = open_deployment(settings())
    try:
        for name, version, updated in SecretStore(deployment.engine, deployment.keyring).names():
            typer.echo(f"secret://{name}  version {version}  updated {updated:%Y-%m-%d %H:%M}")
    finally:
        deployment.close()
