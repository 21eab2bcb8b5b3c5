"""Shell completion: scripts for bash, zsh and fish, and the names commands take.

Typer adds ``--install-completion`` and ``--show-completion`` for the shell
it detects; :func:`named_shell` lets either name the shell instead
(``interlock --show-completion zsh``). The shells ask for candidates through
Typer's protocol (``_INTERLOCK_COMPLETE=complete_bash`` with ``COMP_WORDS`` and
``COMP_CWORD``; ``complete_zsh`` and ``complete_fish`` with
``_TYPER_COMPLETE_ARGS``).

The ``*_names`` functions complete names from the manifest (``--manifest``
when typed before the name, else ``INTERLOCK_MANIFEST`` or ``./interlock.yaml``):
clients, systems, integrations of a kind, event subjects and the secrets the
manifest refers to. They read only the manifest (never the keyring or the
store), and never raise or print: no manifest, no suggestions.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import typer

# Typer's own installer and scripts (the ones its --install-completion uses).
from typer._completion_shared import _get_shell_name, get_completion_script, install

if TYPE_CHECKING:
    from interlock.config.manifest import Manifest

# The manifest's loader, the event registry and the gateway's preflight are
# imported when a name is completed, not by every command that imports this.

__all__ = [
    "SHELLS",
    "api_key_client_names",
    "client_names",
    "database_integration_names",
    "event_subjects",
    "file_integration_names",
    "integration_names",
    "messaging_integration_names",
    "mtls_client_names",
    "named_shell",
    "oauth_client_names",
    "secret_names",
    "system_names",
]

PROG: Final = "interlock"
COMPLETE_VAR: Final = "_INTERLOCK_COMPLETE"
SHELLS: Final = ("bash", "zsh", "fish")
_FLAGS: Final = frozenset({"--install-completion", "--show-completion"})
_SCHEME: Final = "secret://"  # the references to complete, never a value

#: A completion function as Typer calls it: candidates and their help, by prefix.
Completer = Callable[[typer.Context, str], list[tuple[str, str]]]


def named_shell(args: Sequence[str]) -> int | None:
    """``--install-completion SHELL`` or ``--show-completion SHELL``: done, its status.

    ``--install-completion`` alone installs for the shell the command runs in (its
    nearest shell ancestor), else for the login shell (``$SHELL``); when neither is
    one of :data:`SHELLS` (``sh`` runs it, say) it asks for the shell's name rather
    than failing on "Shell sh is not supported". None for any other command line
    (Typer's own ``--show-completion`` detects the shell).
    """
    if list(args) == ["--install-completion"]:
        found = _current_shell()
        if found is None:
            typer.echo(
                "interlock: error[invalid_request]: cannot tell which shell to install "
                f"completion for; name one: interlock --install-completion {'|'.join(SHELLS)}",
                err=True,
            )
            return 2
        args = ["--install-completion", found]
    if len(args) != 2 or args[0] not in _FLAGS:
        return None
    flag, shell = args
    if shell not in SHELLS:
        typer.echo(
            f"interlock: error[invalid_request]: no completion for the shell {shell!r}; "
            f"choose one of {', '.join(SHELLS)}",
            err=True,
        )
        return 2
    if flag == "--show-completion":
        typer.echo(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell))
        return 0
    _, path = install(shell=shell, prog_name=PROG, complete_var=COMPLETE_VAR)
    typer.echo(f"{shell} completion installed in {path}; it takes effect in a new shell")
    return 0


def _current_shell() -> str | None:
    """The running shell if completion supports it, else the login shell's (``$SHELL``)."""
    for name in (_get_shell_name(), Path(os.environ.get("SHELL") or "").name):
        if name in SHELLS:
            return name
    return None


def _manifest(ctx: typer.Context) -> Manifest | None:
    """The manifest the command would read, or None when there is none (or it is invalid)."""
    from interlock.config.loader import load_manifest

    given = ctx.params.get("manifest")
    path = Path(given) if isinstance(given, str | Path) else None
    path = path or Path(os.environ.get("INTERLOCK_MANIFEST") or "interlock.yaml")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_manifest(path)
    except Exception:  # noqa: BLE001  (a completion never fails: no manifest, no names)
        return None


def _completer(names: Callable[[Manifest], Iterable[tuple[str, str]]]) -> Completer:
    """A completion function offering ``names(manifest)`` that start with what is typed."""

    def complete(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
        manifest = _manifest(ctx)
        if manifest is None:
            return []
        try:
            return [(name, why) for name, why in names(manifest) if name.startswith(incomplete)]
        except Exception:  # noqa: BLE001  (a completion never fails)
            return []

    return complete


def _clients(auth: str | None) -> Completer:
    def names(manifest: Manifest) -> Iterable[tuple[str, str]]:
        for name, client in manifest.clients.items():
            if auth is None or auth in client.auth:
                yield name, "client: " + ", ".join(client.auth)

    return _completer(names)


def _integrations(*kinds: str) -> Completer:
    def names(manifest: Manifest) -> Iterable[tuple[str, str]]:
        for name, integration in manifest.integrations.items():
            if not kinds or any(getattr(integration, kind) is not None for kind in kinds):
                yield name, f"{integration.source} -> {integration.target}"

    return _completer(names)


def _systems(manifest: Manifest) -> Iterable[tuple[str, str]]:
    for name, system in manifest.systems.items():
        yield name, f"system in {system.location}"


def _subjects(manifest: Manifest) -> Iterable[tuple[str, str]]:
    from interlock.events.registry import declared_subjects

    for subject, mode in declared_subjects(manifest).items():
        yield subject, f"event subject ({mode})"


def _secrets(manifest: Manifest) -> Iterable[tuple[str, str]]:
    from interlock.gateway.preflight import secret_references

    seen: dict[str, str] = {}
    for found in secret_references(manifest):
        seen.setdefault(found.reference.removeprefix(_SCHEME), found.where)
    for name, where in seen.items():
        yield name, f"named at {where}"


#: Every client of the manifest.
client_names: Final = _clients(None)
#: Clients whose auth includes oauth2 (client secrets, tokens).
oauth_client_names: Final = _clients("oauth2")
#: Clients whose auth includes api_key.
api_key_client_names: Final = _clients("api_key")
#: Clients whose auth includes mtls (client certificates).
mtls_client_names: Final = _clients("mtls")
system_names: Final = _completer(_systems)
#: Every integration of the manifest; then those with a section of one kind.
integration_names: Final = _integrations()
messaging_integration_names: Final = _integrations("messaging")
#: What ``messaging plan|apply`` configure on the brokers: messaging and event streams.
brokered_integration_names: Final = _integrations("messaging", "events")
file_integration_names: Final = _integrations("files")
database_integration_names: Final = _integrations("database")
event_subjects: Final = _completer(_subjects)
#: The secrets the manifest refers to (``secret://NAME``): names, never values.
secret_names: Final = _completer(_secrets)
