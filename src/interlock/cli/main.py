"""The ``interlock`` command: assembly of sub-commands and error handling.

Every deliberate failure is an :class:`InterlockError`; it is printed as one
line, ``interlock: error[code]: message``, with exit status 1. A traceback is
shown only with ``--debug``. Unexpected exceptions print their type only (their
text might carry data we never want on a terminal) and exit with 70
(EX_SOFTWARE).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Final

import typer
import typer.main

from interlock import __version__
from interlock.cli import (
    audit,
    check,
    clients,
    db,
    demo,
    doctor,
    edge,
    events,
    files,
    import_openapi,
    keyring,
    keys,
    manifest,
    messaging,
    oauth,
    pki,
    privacy,
    scan,
    secrets,
    serve,
    setup,
    signature_keys,
    validate,
)
from interlock.cli.arguments import CredentialArgumentError, check_arguments
from interlock.cli.context import settings, state
from interlock.cli.evidence import admin_action, record_admin_action
from interlock.errors import InterlockError
from interlock.logs.redaction import redact_credentials

__all__ = ["app", "main"]

EX_SOFTWARE: Final = 70

app = typer.Typer(
    name="interlock",
    help="Interlock: the security layer for system-to-system integrations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("init")(setup.init)
app.command("migrate")(setup.migrate)
app.command("validate")(validate.validate)
app.command("check")(check.check)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("doctor")(doctor.doctor)
app.command("import-openapi")(import_openapi.import_openapi)
app.command("scan")(scan.scan)
app.add_typer(keyring.app, name="keyring")
app.add_typer(keys.app, name="keys")
app.add_typer(secrets.app, name="secrets")
app.add_typer(oauth.app, name="oauth")
app.add_typer(clients.app, name="clients")
app.add_typer(pki.app, name="pki")
app.add_typer(audit.app, name="audit")
app.add_typer(signature_keys.app, name="signature-keys")
app.add_typer(privacy.app, name="privacy")
app.add_typer(messaging.app, name="messaging")
app.add_typer(files.app, name="files")
app.add_typer(db.app, name="db")
app.add_typer(events.app, name="events")
app.add_typer(edge.app, name="edge")
app.add_typer(manifest.app, name="manifest")


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"interlock {__version__}")
        raise typer.Exit


@app.callback()
def _global_options(
    data_dir: Annotated[
        str | None,
        typer.Option(
            "--data-dir",
            envvar="INTERLOCK_DATA_DIR",
            help="Data directory (keyring, embedded databases).",
            show_envvar=True,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            is_eager=True,
            callback=_print_version,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    """Interlock: the security layer for system-to-system integrations."""
    state.data_dir = data_dir
    state.debug = debug


@app.command("version")
def version() -> None:
    """Print the installed version."""
    typer.echo(f"interlock {__version__}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return the exit status (never raises)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # Before anything runs, parses (a usage error quotes arguments) or is recorded.
        check_arguments(args)
    except CredentialArgumentError as exc:
        _error(exc.code, exc.message)
        status = 1
    else:
        status = _main(args)
    # Help and usage errors (exit 2) ran nothing; --debug failures raise.
    if admin_action(args) is None or "--help" in args or status == 2:
        return status
    try:
        problem = record_admin_action(settings(), args, status)
    except InterlockError as exc:  # e.g. settings that did not load: the command said so
        problem = None if status else exc.message
    if problem is not None and status == 0:
        _error("audit_unavailable", problem)
        return 1
    return status


def _main(args: list[str]) -> int:
    command = typer.main.get_command(app)
    try:
        # Standalone mode: usage errors, --help and typer.Exit end in SystemExit.
        command.main(args=args, prog_name="interlock", standalone_mode=True)
    except SystemExit as exc:
        return _exit_status(exc.code)
    except InterlockError as exc:
        if state.debug:
            raise
        _error(exc.code, exc.message)
        return 1
    except Exception as exc:
        if state.debug:
            raise
        typer.echo(
            f"interlock: internal error ({type(exc).__name__}); run with --debug for details",
            err=True,
        )
        return EX_SOFTWARE
    return 0


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _error(code: str, message: str) -> None:
    # Messages never carry secrets on purpose; one that quotes a mistyped key still must not.
    typer.echo(f"interlock: error[{code}]: {_one_line(redact_credentials(message))}", err=True)


def _one_line(message: str) -> str:
    return " ".join(message.split())
