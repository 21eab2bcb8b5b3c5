"""``interlock db``: least-privilege roles and views of shared-database integrations.

* ``plan INTEGRATION`` — the SQL that ``apply`` runs (no server, no vault);
* ``apply INTEGRATION`` — runs it (PostgreSQL: one transaction; MariaDB:
  statement by statement, repeatable), revokes memberships and grants beyond
  the plan, records ``databases.apply`` on the audit trail, and gives every
  consumer without a credential one through the rotation engine
  (``secret://db/INTEGRATION/CLIENT``, rotator ``shared_database``);
* ``audit [INTEGRATION] [--json]`` — every privilege beyond the plan; exit 1
  on drift;
* ``snapshot INTEGRATION -o FILE`` / ``diff INTEGRATION --snapshot FILE
  [--json]`` — what the views rest on, and what changed since (exit 1 on a
  breaking or widening change), for a migration pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Final

import typer

from interlock.cli.context import settings
from interlock.cli.evidence import admin_actor
from interlock.cli.options import ManifestOption
from interlock.cli.output import JsonOption, print_json
from interlock.cli.vault_session import VaultSession, open_vault_session
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.databases import service, snapshot
from interlock.databases.connection import Login, login_from
from interlock.databases.plan import Plan, plan_for
from interlock.errors import InvalidRequestError, NotFoundError
from interlock.pki import Pki
from interlock.secrets import rotators
from interlock.secrets.rotation import RotationEngine
from interlock.secrets.rotators.base import RotatorContext
from interlock.secrets.vault import SecretInfo

__all__ = ["app"]

app = typer.Typer(help="Shared databases: least-privilege roles and views, drift, schema changes.")

ROTATOR: Final = "shared_database"

Integration = Annotated[str, typer.Argument(help="A shared_database integration of the manifest.")]


def _manifest(path: Path | None) -> Manifest:
    return load_manifest(path or settings().manifest)


def _admin(session: VaultSession, plan: Plan) -> Login:
    return login_from(
        session.vault.resolve(plan.system.admin), f"the admin credential of {plan.system_name}"
    )


@app.command("plan")
def plan(integration: Integration, manifest: ManifestOption = None) -> None:
    """Print the SQL that apply runs for INTEGRATION (nothing is connected to)."""
    planned = plan_for(_manifest(manifest), integration)
    kind = "one transaction" if planned.kind == "postgresql" else "statement by statement"
    typer.echo(f"-- {integration} on {planned.system_name} ({planned.kind}, {kind})")
    for statement in service.planned_sql(planned):
        typer.echo(statement)


@app.command("apply")
def apply(
    integration: Integration,
    manifest: ManifestOption = None,
    credentials: Annotated[
        bool,
        typer.Option(
            "--credentials/--no-credentials",
            help="Give consumers without a credential one through the rotation engine.",
        ),
    ] = True,
) -> None:
    """Create or correct INTEGRATION's roles, views and grants, and record it (audited)."""
    loaded = _manifest(manifest)
    planned = plan_for(loaded, integration)
    with open_vault_session() as session:
        done = service.apply(
            planned, _admin(session, planned), audit_sink=session.audit, actor=admin_actor()
        )
        typer.echo(f"{integration}: {len(done)} statement(s) applied on {planned.system_name}")
        if credentials:
            for line in _credentials(session, loaded, planned):
                typer.echo(line)


def _credentials(session: VaultSession, manifest: Manifest, planned: Plan) -> Iterator[str]:
    """Each consumer without a secret gets one: a placeholder, the rotator, one rotation."""
    actor = admin_actor()
    missing: list[str] = []
    for consumer in planned.consumers:
        try:
            session.vault.info(consumer.secret, actor=actor)
        except NotFoundError:
            session.vault.write(
                consumer.secret, b'{"username": null}', actor=actor, kind="database_password"
            )
            session.vault.configure(
                consumer.secret,
                actor=actor,
                owner=consumer.client,
                description=f"{consumer.client}'s login to {planned.integration}'s views",
                rotator=ROTATOR,
                rotator_config={"integration": planned.integration, "client": consumer.client},
            )
            missing.append(consumer.secret)
    if not missing:
        return
    engine = _rotation_engine(session, manifest)
    for name in missing:
        version = engine.rotate(name)
        yield f"secret://{name}: version {version} is current (rotated by {ROTATOR})"


def _rotation_engine(session: VaultSession, manifest: Manifest) -> RotationEngine:
    deployment = session.deployment
    context = RotatorContext(
        vault=session.vault,
        engine=deployment.engine,
        keyring=deployment.keyring,
        manifest=lambda: manifest,
        pki=lambda: Pki(
            deployment.engine,
            deployment.keyring,
            deployment.deployment_id,
            deployment.settings.trust_domain,
        ),
    )

    def build(info: SecretInfo) -> rotators.Rotator:
        return rotators.build(info.rotator or "", info.rotator_config, context)

    return RotationEngine(
        session.vault, deployment.engine, build, audit=session.audit, actor=admin_actor()
    )


@app.command("audit")
def audit(
    integration: Annotated[
        str | None, typer.Argument(help="One integration (default: every shared_database one).")
    ] = None,
    manifest: ManifestOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report every privilege beyond the plan (exit 1 on drift)."""
    loaded = _manifest(manifest)
    names = (
        [integration]
        if integration is not None
        else [n for n, f in loaded.integrations.items() if f.database is not None]
    )
    if not names:
        raise InvalidRequestError("the manifest has no shared_database integration")
    report: dict[str, list[dict[str, object]]] = {}
    with open_vault_session() as session:
        for name in names:
            planned = plan_for(loaded, name)
            found = service.audit(planned, _admin(session, planned))
            report[name] = [{**d.privilege.as_json(), "detail": d.detail} for d in found]
    if as_json:
        print_json(
            {
                "integrations": [
                    {"integration": name, "drift": entries} for name, entries in report.items()
                ]
            }
        )
    else:
        for name, entries in report.items():
            typer.echo(f"{name}: {f'{len(entries)} beyond the plan' if entries else 'no drift'}")
            for entry in entries:
                typer.echo(f"  {entry['detail']}")
    if any(report.values()):
        raise typer.Exit(1)


@app.command("snapshot")
def take_snapshot(
    integration: Integration,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the snapshot.")],
    manifest: ManifestOption = None,
) -> None:
    """Record INTEGRATION's view definitions and the source columns they rest on."""
    planned = plan_for(_manifest(manifest), integration)
    with open_vault_session() as session:
        columns = service.source_columns(planned, _admin(session, planned))
    taken = snapshot.take(planned, columns, service.view_definitions)
    output.write_text(json.dumps(taken, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    typer.echo(f"{integration}: {len(columns)} source table(s) recorded in {output}")


@app.command("diff")
def diff(
    integration: Integration,
    snapshot_file: Annotated[
        Path, typer.Option("--snapshot", help="A snapshot written by `interlock db snapshot`.")
    ],
    manifest: ManifestOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare the source tables now with a snapshot (exit 1 on a breaking or widening change)."""
    planned = plan_for(_manifest(manifest), integration)
    try:
        taken = json.loads(snapshot_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidRequestError(f"{snapshot_file}: not a readable snapshot ({error})") from None
    with open_vault_session() as session:
        live = service.source_columns(planned, _admin(session, planned))
    changes = snapshot.diff(planned, taken, live)
    if as_json:
        print_json({"changes": [c.as_json() for c in changes]})
    else:
        for change in changes:
            column = f".{change.column}" if change.column else ""
            who = f" (read by {', '.join(change.consumers)})" if change.consumers else ""
            typer.echo(f"{change.kind}: {change.table}{column}: {change.detail}{who}")
        if not changes:
            typer.echo(f"{integration}: no change since the snapshot")
    if any(c.kind in {"breaking", "widening"} for c in changes):
        raise typer.Exit(1)
