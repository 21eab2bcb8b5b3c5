"""``interlock keyring``: inspect and rotate the root key-encryption key."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated, Final

import typer

from interlock.cli.context import settings
from interlock.cli.evidence import note_result
from interlock.cli.output import JsonOption, print_json
from interlock.crypto.kek_transport import new_passphrase
from interlock.crypto.keyfile import read_small_file, write_private_file
from interlock.errors import InvalidRequestError
from interlock.store import RewrapReport, open_deployment, open_keyring, rewrap_all
from interlock.store.deployment import reseal_canary
from interlock.tables import sealed_columns

_MAX_EXPORT: Final = 4096
_MAX_PASSPHRASE: Final = 256

__all__ = ["app"]

app = typer.Typer(
    help="Inspect and rotate the root key-encryption key (KEK).", no_args_is_help=True
)


@app.command("status")
def status(as_json: JsonOption = False) -> None:
    """Show the keyring's id, backend and KEK versions (never key material)."""
    deployment = open_deployment(settings())
    try:
        keyring = deployment.keyring
        if as_json:
            print_json(
                {
                    "keyring_id": keyring.keyring_id,
                    "backend": keyring.backend,
                    "description": keyring.describe(),
                    "versions": list(keyring.versions),
                    "current_version": keyring.current_version,
                }
            )
            return
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
        if not rewrap:  # (a re-wrap moves it too)
            # Other hosts check the canary at start: one without this version refuses, naming it.
            reseal_canary(deployment.engine, deployment.keyring)
        typer.echo(f"KEK version {version} is now current")
        if deployment.keyring.backend == "file":
            typer.echo(
                f"other hosts with their own keyring file need it: `interlock keyring "
                f"export-version {version} --out FILE` here, `import-version FILE` there",
                err=True,
            )
        if rewrap:
            report = rewrap_all(deployment.engine, deployment.keyring, sealed_columns())
            typer.echo(rewrap_summary(report, version))
    finally:
        deployment.close()


@app.command("rewrap")
def rewrap_command() -> None:
    """Re-wrap stored data keys under the current KEK version (resumable)."""
    deployment = open_deployment(settings())
    try:
        report = rewrap_all(deployment.engine, deployment.keyring, sealed_columns())
        typer.echo(rewrap_summary(report, deployment.keyring.current_version))
    finally:
        deployment.close()


def rewrap_summary(report: RewrapReport, version: int) -> str:
    """``re-wrapped 8 of 9 sealed values ...; 1 already under version 3``: every value counted."""
    rest = []
    if report.current:
        rest.append(f"{report.current} already under version {version}")
    if report.empty:
        rest.append(f"{report.empty} empty (nothing sealed)")
    if report.contended:
        rest.append(
            f"{report.contended} changed by another writer meanwhile "
            "(run `interlock keyring rewrap` again)"
        )
    head = (
        f"re-wrapped {report.rewrapped} of {report.examined} sealed values "
        f"under KEK version {version}"
    )
    return "; ".join((head, *rest))


@app.command("export-version")
def export_version(
    version: Annotated[int, typer.Argument(min=1, help="The KEK version to export.")],
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the sealed export (a new file, 0600).")
    ],
) -> None:
    """Seal KEK VERSION for another host's `import-version` (file keyrings).

    The export is a JWE under a random passphrase printed once on standard
    error: move the file and the passphrase by different channels.
    """
    keyring = open_keyring(settings())
    try:
        passphrase = new_passphrase()
        token = keyring.export_version_sealed(version, passphrase)
        keyring_id = keyring.keyring_id
    finally:
        keyring.close()
    try:
        write_private_file(out, token.encode() + b"\n")
    except FileExistsError:
        raise InvalidRequestError(f"{out} exists; refusing to overwrite it") from None
    note_result(version=version, keyring_id=keyring_id)
    typer.echo(f"KEK version {version} of keyring {keyring_id} sealed to {out}")
    typer.echo(f"transport passphrase (shown once): {passphrase}", err=True)


@app.command("import-version")
def import_version(
    file: Annotated[Path, typer.Argument(help="A file from `interlock keyring export-version`.")],
    make_current: Annotated[
        bool,
        typer.Option(
            "--make-current/--keep-current",
            help="Whether a version newer than the current one becomes current (new data "
            "keys wrapped under it), as it is on the host that rotated; --keep-current "
            "adds it for reading only.",
        ),
    ] = True,
) -> None:
    """Add the KEK version sealed in FILE; the passphrase is read from standard input."""
    token = read_small_file(file, _MAX_EXPORT).decode("ascii", "replace")
    passphrase = _passphrase()
    keyring = open_keyring(settings())
    try:
        before = keyring.current_version
        version, added = keyring.import_version_sealed(token, passphrase, make_current=make_current)
        current = keyring.current_version
    finally:
        keyring.close()
    note_result(version=version, added=added, current=current)
    held = (
        f"KEK version {version} imported"
        if added
        else f"KEK version {version} was already held (the same key)"
    )
    if current != before:
        typer.echo(f"{held}; it is now current (new data keys are wrapped under it)")
    elif added:
        typer.echo(f"{held}; version {current} stays current (new data keys are wrapped under it)")
    else:
        typer.echo(f"{held}; nothing changed")


def _passphrase() -> str:
    if sys.stdin.isatty():
        text = getpass.getpass("transport passphrase: ")
    else:
        text = sys.stdin.read(_MAX_PASSPHRASE + 1).strip()
    if not text or len(text) > _MAX_PASSPHRASE:
        raise InvalidRequestError("no transport passphrase on standard input")
    return text
