"""``interlock secrets rotate`` and ``interlock secrets overdue``: the rotation engine's face.

``rotate NAME`` runs a rotation (or resumes an interrupted one where it
stopped); ``rotate --due`` does the schedule's work, for cron or a systemd
timer: retires previous versions whose overlap is over, resumes interrupted
rotations and rotates what is due. ``overdue`` lists secrets older than their
maximum age and exits 1 when there is any, for monitoring.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer

from interlock.cli.evidence import admin_actor
from interlock.cli.output import JsonOption, iso, print_json
from interlock.cli.vault_session import open_vault_session
from interlock.config.loader import load_manifest
from interlock.errors import InvalidRequestError
from interlock.pki import Pki
from interlock.secrets import rotators
from interlock.secrets.rotation import RotationEngine, StepName
from interlock.secrets.rotation import overdue as overdue_secrets
from interlock.secrets.rotators.base import RotatorContext
from interlock.secrets.vault import SecretInfo, Vault

__all__ = ["overdue", "rotate"]

_DONE = {
    "create": "created",
    "set": "set",
    "test": "tested",
    "promote": "promoted",
    "retire": "retired",
}


@contextmanager
def _engine() -> Iterator[tuple[Vault, RotationEngine]]:
    with open_vault_session() as session:
        deployment, vault = session.deployment, session.vault
        current = deployment.settings
        context = RotatorContext(
            vault=vault,
            engine=deployment.engine,
            keyring=deployment.keyring,
            manifest=lambda: load_manifest(current.manifest),
            pki=lambda: Pki(
                deployment.engine,
                deployment.keyring,
                deployment.deployment_id,
                current.trust_domain,
            ),
        )

        def build(info: SecretInfo) -> rotators.Rotator:
            return rotators.build(info.rotator or "", info.rotator_config, context)

        yield (
            vault,
            RotationEngine(
                vault,
                deployment.engine,
                build,
                audit=session.audit,
                actor=admin_actor(),
                on_step=_progress,
            ),
        )


def _progress(name: str, step: StepName, version: int) -> None:
    typer.echo(f"secret://{name}: {_DONE[step]} version {version}", err=True)


def rotate(
    name: Annotated[str | None, typer.Argument(help="The secret, e.g. erp/api-key.")] = None,
    due: Annotated[
        bool, typer.Option("--due", help="Everything the schedule asks for (for cron).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="End a previous version still in its overlap first."),
    ] = False,
) -> None:
    """Rotate NAME through its rotator, resuming an interrupted rotation where it stopped.

    With --due: retire previous versions whose overlap is over, resume
    interrupted rotations and rotate every secret that is due; exits 1 if
    any of them failed.
    """
    if (name is None) == (not due):
        raise InvalidRequestError("name one secret, or pass --due")
    with _engine() as (_, engine):
        if name is not None:
            current = engine.rotate(name, force=force)
            typer.echo(f"secret://{name} rotated: version {current} is current")
            return
        results = engine.run_due()
    for done in results:
        version = "" if done.version is None else f" version {done.version}"
        detail = f": {done.detail}" if done.detail else ""
        typer.echo(f"secret://{done.name} {done.action}{version}{detail}")
    if not results:
        typer.echo("nothing is due")
    if any(d.action == "failed" for d in results):
        raise typer.Exit(1)


def overdue(
    as_json: JsonOption = False,
) -> None:
    """Secrets past their maximum age or near certificate expiry; exit 1 if any (monitoring)."""
    with _engine() as (vault, _):
        now = vault.now()
        found = overdue_secrets(vault, now)
    if as_json:
        print_json({"secrets": [_json(i, now) for i in found]})
    else:
        for info in found:
            expiry = f"  certificate expires {info.not_after:%Y-%m-%d}" if info.not_after else ""
            typer.echo(
                f"secret://{info.name}  {info.kind}  version {info.current_version}  "
                f"last rotated {info.age_since:%Y-%m-%d}  {_days(info, now)} days old "
                f"(max {(info.max_age or 0) // 86_400}){expiry}  rotator {info.rotator or '-'}"
            )
        if not found:
            typer.echo("nothing is overdue")
    if found:
        raise typer.Exit(1)


def _days(info: SecretInfo, now: datetime) -> int:
    return (now - info.age_since).days


def _json(info: SecretInfo, now: datetime) -> dict[str, object]:
    return {
        "name": info.name,
        "kind": info.kind,
        "current_version": info.current_version,
        "last_rotated_at": iso(info.age_since),
        "age_days": _days(info, now),
        "max_age_seconds": info.max_age,
        "overdue_since": iso(info.overdue_at()),
        "certificate_not_after": iso(info.not_after),
        "rotator": info.rotator,
    }
