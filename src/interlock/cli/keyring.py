"""``interlock keyring``: inspect and rotate the root key-encryption key."""

from __future__ import annotations

from typing import Annotated

import typer

from interlock.cli.context import settings
from interlock.store import open_deployment, rewrap_all
from interlock.tables import sealed_columns

__all__ = ["app"]

app = typer.Typer(
    help="Inspect and rotate the root key-encryption key (KEK).", no_args_is_help=True
)


@app.command("status")
def status() -> None:
    """Show the keyring's id, backend and KEK versions (never key material)."""
    deployment = open_deployment(settings())
    try:
        keyring = deployment.keyring
        typer.echo(f"keyring {keyring.keyring_id}")
        typer.echo(f"  backend   {keyring.describe()}")
        typer.echo(f"  versions  {', '.join(str(v) for v in keyring.versions)}")
        typer.echo(f"  current   {keyring.current_version}")
    finally:
        deployment.close()


@app.command("rotate")
def rotate(
    rewrap: Annotated[
        bool,
        typer.Option(
            "--rewrap/--no-rewrap",
            help="Re-wrap every stored data key under the new version right away.",
        ),
    ] = True,
) -> None:
    """Add a new KEK version and make it current; old versions stay for reading."""
    deployment = open_deployment(settings())
    try:
        version = deployment.keyring.rotate()
        typer.echo(f"KEK version {version} is now current")
        if rewrap:
            report = rewrap_all(deployment.engine, deployment.keyring, sealed_columns())
            typer.echo(f"re-wrapped {report.rewrapped} of {report.examined} sealed values")
    finally:
        deployment.close()


@app.command("rewrap")
def rewrap_command() -> None:
    """Re-wrap stored data keys under the current KEK version (resumable)."""
    deployment = open_deployment(settings())
    try:
        report = rewrap_all(deployment.engine, deployment.keyring, sealed_columns())
        typer.echo(f"re-wrapped {report.rewrapped} of {report.examined} sealed values")
    finally:
        deployment.close()
