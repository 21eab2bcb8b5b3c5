"""The ``interlock`` command: assembly of sub-commands and error handling.

Every deliberate failure is an :class:`InterlockError`; it is printed as one
line, ``interlock: error[code]: message``, with exit status 1. A traceback is
shown only with ``--debug``. Unexpected exceptions print their type only (their
text might carry data we never want on a terminal) and exit with 70
(EX_SOFTWARE). Shell completion is :mod:`interlock.cli.completion`'s.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Final

import typer
import typer.main

from interlock import __version__
from interlock.cli.arguments import CredentialArgumentError, check_arguments
from interlock.cli.completion import named_shell
from interlock.cli.evidence import admin_action, note_refusal, record_admin_action
from interlock.cli.lazy import Lazy, LazyGroup
from interlock.errors import InterlockError
from interlock.logs.redaction import redact_credentials

__all__ = ["app", "main"]

EX_SOFTWARE: Final = 70

#: Every sub-command: where it lives and its one-line help, in ``--help`` order.
#: ``interlock --help`` and completion read this; a module is imported only when
#: its command runs, shows its help or completes its arguments
#: (:mod:`interlock.cli.lazy`). ``tests/cli/test_startup.py`` keeps the help in step.
COMMANDS: Final[dict[str, Lazy]] = {
    "init": Lazy(
        "interlock.cli.setup",
        "init",
        "Create the data directory (0700), a new keyring (0600 file, or in the HSM) and the store.",
    ),
    "migrate": Lazy(
        "interlock.cli.setup",
        "migrate",
        "Apply pending database migrations (they also run at every start).",
    ),
    "validate": Lazy(
        "interlock.cli.validate",
        "validate",
        "Check a manifest (and compile its schemas); print OK, or FILE:LINE:COL: path: message.",
    ),
    "check": Lazy(
        "interlock.cli.check",
        "check",
        "Evaluate the security checklist for every integration: pass, fail, n/a or needs evidence.",
    ),
    "demo": Lazy(
        "interlock.cli.demo",
        "demo",
        "Run the gateway on a fresh deployment with a sample ERP, and show it working.",
    ),
    "serve": Lazy("interlock.cli.serve", "serve", "Serve the manifest's routes over HTTPS."),
    "doctor": Lazy(
        "interlock.cli.doctor",
        "doctor",
        "Check the deployment before serving: one line per check; exit 1 if any check fails.",
    ),
    "import-openapi": Lazy(
        "interlock.cli.import_openapi",
        "import_openapi",
        "Generate routes and request schemas from SPEC into the manifest.",
    ),
    "scan": Lazy(
        "interlock.cli.scan",
        "scan",
        "Find hardcoded secrets and switches that turn TLS, SSH, YAML or XML safety off.",
    ),
    "version": Lazy("interlock.cli.main", "version", "Print the installed version."),
    "keyring": Lazy(
        "interlock.cli.keyring",
        "app",
        "Inspect and rotate the root key-encryption key (KEK).",
    ),
    "keys": Lazy("interlock.cli.keys", "app", "Create, list, rotate and revoke API keys."),
    "secrets": Lazy(
        "interlock.cli.secrets",
        "app",
        "The vault: credentials Interlock and its clients use towards systems.",
    ),
    "oauth": Lazy("interlock.cli.oauth", "app", "OAuth 2.0: token-signing keys."),
    "clients": Lazy(
        "interlock.cli.clients",
        "app",
        "OAuth 2.0 clients: secrets (shown once) and public keys for private_key_jwt.",
    ),
    "pki": Lazy(
        "interlock.cli.pki",
        "app",
        "Interlock's PKI: root and issuing CA, client and server certificates, CRL.",
    ),
    "audit": Lazy(
        "interlock.cli.audit",
        "app",
        "The tamper-evident audit trail: search, verify, prove, export, prune.",
    ),
    "signature-keys": Lazy(
        "interlock.cli.signature_keys",
        "app",
        "Keys that clients sign requests with (RFC 9421), for routes with a replay policy.",
    ),
    "privacy": Lazy(
        "interlock.cli.privacy",
        "app",
        "GDPR: the flows the gateway enforces and observes, against what is declared.",
    ),
    "messaging": Lazy(
        "interlock.cli.messaging",
        "app",
        "Secure messaging: message keys, broker configuration, dead letters.",
    ),
    "files": Lazy(
        "interlock.cli.files",
        "app",
        "File transfer: SFTP partners, the drop server, quarantine.",
    ),
    "db": Lazy(
        "interlock.cli.db",
        "app",
        "Shared databases: least-privilege roles and views, drift, schema changes.",
    ),
    "events": Lazy("interlock.cli.events", "app", "Event streaming: the schema registry."),
    "edge": Lazy(
        "interlock.cli.edge",
        "app",
        "Edge mode: nginx (or Envoy, Traefik, Caddy) carries the bytes, Interlock decides.",
    ),
    "manifest": Lazy(
        "interlock.cli.manifest",
        "app",
        "Publish manifest versions to the store (INTERLOCK_MANIFEST_SOURCE=store); "
        "print the manifest's JSON Schema.",
    ),
}


class InterlockGroup(LazyGroup):
    """The ``interlock`` group: its sub-commands are :data:`COMMANDS`, loaded on demand."""

    table = COMMANDS


app = typer.Typer(
    name="interlock",
    help="Interlock: the security layer for system-to-system integrations.",
    cls=InterlockGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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
    from interlock.cli.context import state  # settings, rich and logging: once a command runs

    state.data_dir = data_dir
    state.debug = debug


def version() -> None:
    """Print the installed version."""
    typer.echo(f"interlock {__version__}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return the exit status (never raises)."""
    args = list(sys.argv[1:] if argv is None else argv)
    note_refusal(None)  # no reason left over from an earlier command in this process
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
    from interlock.cli.context import settings

    try:
        problem = record_admin_action(settings(), args, status)
    except InterlockError as exc:  # e.g. settings that did not load: the command said so
        problem = None if status else exc.message
    if problem is not None and status == 0:
        _error("audit_unavailable", problem)
        return 1
    return status


def _main(args: list[str]) -> int:
    named = named_shell(args)  # --install-completion zsh: Typer's own flag detects the shell
    if named is not None:
        return named
    command = typer.main.get_command(app)
    try:
        # Standalone mode: usage errors, --help and typer.Exit end in SystemExit.
        command.main(args=args, prog_name="interlock", standalone_mode=True)
    except SystemExit as exc:
        return _exit_status(exc.code)
    except InterlockError as exc:
        if _debug():
            raise
        _error(exc.code, exc.message)
        return 1
    except Exception as exc:
        if _debug():
            raise
        typer.echo(
            f"interlock: internal error ({type(exc).__name__}); run with --debug for details",
            err=True,
        )
        return EX_SOFTWARE
    return 0


def _debug() -> bool:
    """``--debug`` was given (the context module loads settings: imported when needed)."""
    from interlock.cli.context import state

    return state.debug


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _error(code: str, message: str) -> None:
    # Messages never carry secrets on purpose; one that quotes a mistyped key still must not.
    line = f"error[{code}]: {_one_line(redact_credentials(message))}"
    typer.echo(f"interlock: {line}", err=True)
    note_refusal(line)  # the reason of a recorded admin action's audit entry


def _one_line(message: str) -> str:
    return " ".join(message.split())
