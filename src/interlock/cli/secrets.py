"""``interlock secrets``: the vault — store, read, version, guard and rotate credentials.

Values are read from standard input (or a hidden prompt), never from the
command line, and printed only by ``get --reveal``. Every read of a value and
every change goes on the audit trail.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer

from interlock.cli import completion, rotation
from interlock.cli.context import settings
from interlock.cli.evidence import admin_actor
from interlock.cli.options import ManifestOption, duration_option
from interlock.cli.output import Col, JsonOption, iso, print_json, print_table, table, when
from interlock.cli.vault_session import open_vault_session
from interlock.config.loader import load_manifest
from interlock.errors import InvalidRequestError
from interlock.identity.clients import require_client
from interlock.secrets.vault import KINDS, MAX_SECRET_BYTES, SecretInfo, Vault, VersionInfo

__all__ = ["app", "open_vault"]

app = typer.Typer(
    help="The vault: credentials Interlock and its clients use towards systems.",
    no_args_is_help=True,
)

_Name = Annotated[
    str,
    typer.Argument(help="Secret name, e.g. erp/api-key.", autocompletion=completion.secret_names),
]
_Versions = Annotated[
    list[int], typer.Option("--version", "-v", help="A version (repeat for several).")
]


@contextmanager
def open_vault() -> Iterator[Vault]:
    """The deployment's vault, recording on its audit trail; closed on exit."""
    with open_vault_session() as session:
        yield session.vault


def _read_value(name: str) -> bytes:
    if sys.stdin.isatty():
        value = getpass.getpass(f"value for {name}: ").encode()
    else:
        # The largest value, one final line break ("\r\n" at most) and one byte more,
        # to tell a stream that goes on: stripping the break of a stream cut off
        # right after it would store a truncated value without a word.
        value = sys.stdin.buffer.read(MAX_SECRET_BYTES + len(b"\r\n") + 1)
        if len(value) > MAX_SECRET_BYTES + len(b"\r\n"):
            raise InvalidRequestError(f"a secret is at most {MAX_SECRET_BYTES} bytes")
        if value.endswith(b"\n"):  # what `echo` and here-strings add
            value = value[:-1].removesuffix(b"\r")
    if not value:
        raise InvalidRequestError("no value on standard input")
    return value


def _seconds(text: str | None) -> int | None:
    duration = duration_option(text)
    return None if duration is None else int(duration.total_seconds())


def _when(value: datetime | None) -> str:
    return when(value, utc=False)


@app.command("put")
def put(
    name: _Name,
    cas: Annotated[
        int | None,
        typer.Option(
            "--cas",
            help="Check-and-set: write only if this version is current (0: only if new).",
        ),
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help=f"For a new secret: {', '.join(KINDS)}.")
    ] = None,
) -> None:
    """Store a new version of NAME, read from standard input (or a hidden prompt).

    Never pass a secret as a command-line argument: it would be visible in the
    process list and shell history.
    """
    value = _read_value(name)
    with open_vault() as vault:
        info = vault.write(name, value, actor=admin_actor(), cas=cas, kind=kind)
    typer.echo(f"stored secret://{name} (version {info.version})")


@app.command("get")
def get(
    name: _Name,
    version: Annotated[int | None, typer.Option("--version", "-v", help="A version.")] = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="current (default), previous or pending.")
    ] = None,
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Write the value itself to standard output.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show which version of NAME is served; with --reveal, write its value to stdout.

    A revealed value is written as it is stored, with no newline added, so it
    can be piped. ``--json`` prints the version served (never its value). The
    read is recorded on the audit trail either way.
    """
    if stage not in {None, "current", "previous", "pending"}:
        raise InvalidRequestError("--stage is current, previous or pending")
    if reveal and as_json:
        raise InvalidRequestError(
            "--json describes the version served and never holds its value; --reveal writes "
            "the value alone: use one of them"
        )
    with open_vault() as vault:
        secret, info = vault.read(
            name,
            actor=admin_actor(),
            version=version,
            stage=stage,  # type: ignore[arg-type]  # checked above
        )
    if reveal:
        sys.stdout.buffer.write(secret.reveal())
        sys.stdout.buffer.flush()
        return
    if as_json:
        print_json(
            {
                "name": name,
                "version": info.version,
                "stage": info.stage,
                "created_at": iso(info.created_at),
                "created_by": info.created_by,
                "valid_until": iso(info.valid_until),
            }
        )
        return
    typer.echo(
        f"secret://{name} version {info.version} ({info.stage or 'superseded'}), "
        f"created {_when(info.created_at)} by {info.created_by}"
    )


@app.command("list")
def list_secrets(
    prefix: Annotated[str, typer.Argument(help="Only names under this path.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Names, versions and rotation state of stored secrets (never values)."""
    with open_vault() as vault:
        found = vault.secrets(prefix, actor=admin_actor())
    if as_json:
        print_json({"secrets": [_info_json(i) for i in found]})
        return
    for info in found:
        due = info.due_at()
        typer.echo(
            f"secret://{info.name}  version {info.current_version}  {info.kind}  "
            f"updated {_when(info.updated_at)}  rotation due {_when(due)}"
        )


@app.command("show")
def show(name: _Name, as_json: JsonOption = False) -> None:
    """Metadata and every version of NAME (never values)."""
    with open_vault() as vault:
        info = vault.info(name, actor=admin_actor())
        versions = vault.versions(name, actor=admin_actor())
    if as_json:
        print_json(_info_json(info) | {"versions": [_version_json(v) for v in versions]})
        return
    for label, value in (
        ("secret", f"secret://{info.name}"),
        ("kind", info.kind),
        ("owner", info.owner or "-"),
        ("current version", str(info.current_version)),
        ("rotator", info.rotator or "-"),
        ("last rotated", _when(info.last_rotated_at)),
        ("rotation due", _when(info.due_at())),
        ("certificate expires", _when(info.not_after)),
    ):
        typer.echo(f"{label:<20} {value}")
    result = table(
        "Versions",
        Col("version", identifier=True, justify="right"),
        "stage",
        "created",
        Col("created by", identifier=True),
        "valid until",
        "deleted",
        "destroyed",
    )
    for version in versions:
        result.add_row(
            str(version.version),
            version.stage or "superseded",
            _when(version.created_at),
            version.created_by,
            _when(version.valid_until),
            _when(version.deleted_at),
            _when(version.destroyed_at),
        )
    print_table(result)


@app.command("configure")
def configure(  # noqa: PLR0917  (one option per metadata field)
    name: _Name,
    owner: Annotated[str | None, typer.Option("--owner", help="Who answers for it.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help=", ".join(KINDS))] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    rotate_every: Annotated[
        str | None, typer.Option("--rotate-every", help="Rotation period, e.g. 30d.")
    ] = None,
    max_age: Annotated[
        str | None, typer.Option("--max-age", help="Overdue beyond this age, e.g. 90d.")
    ] = None,
    overlap: Annotated[
        str | None,
        typer.Option("--overlap", help="How long the previous version stays valid, e.g. 1h."),
    ] = None,
    rotator: Annotated[
        str | None, typer.Option("--rotator", help="How to rotate it (see docs/vault.md).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            help="A rotator setting KEY=VALUE (repeat); secrets by reference: secret://...",
        ),
    ] = None,
    no_schedule: Annotated[
        bool, typer.Option("--no-schedule", help="Never rotate on a schedule.")
    ] = False,
) -> None:
    """Change NAME's owner, kind, rotation policy or rotator."""
    config: dict[str, str] | None = None
    if option:
        config = {}
        for item in option:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise InvalidRequestError(f"--option {item!r}: write KEY=VALUE")
            config[key] = value
    if config is not None and rotator is None:
        raise InvalidRequestError("--option needs --rotator")
    with open_vault() as vault:
        info = vault.configure(
            name,
            actor=admin_actor(),
            owner=owner,
            kind=kind,
            description=description,
            rotate_every=_seconds(rotate_every),
            max_age=_seconds(max_age),
            overlap=None if overlap is None else _overlap_seconds(overlap),
            rotator=rotator,
            rotator_config=config,
            clear_schedule=no_schedule,
        )
    print_json(_info_json(info))


def _overlap_seconds(text: str) -> int:
    return 0 if text.strip() in {"0", "0s"} else _seconds(text) or 0


@app.command("delete")
def delete(name: _Name, version: _Versions) -> None:
    """Soft-delete versions of NAME (undelete restores them)."""
    with open_vault() as vault:
        done = vault.delete(name, version, actor=admin_actor())
    typer.echo(f"deleted version {', '.join(map(str, done))} of secret://{name}")


@app.command("undelete")
def undelete(name: _Name, version: _Versions) -> None:
    """Restore soft-deleted versions of NAME."""
    with open_vault() as vault:
        done = vault.undelete(name, version, actor=admin_actor())
    if done:
        typer.echo(f"restored version {', '.join(map(str, done))} of secret://{name}")
    unchanged = sorted(set(version) - set(done))
    if unchanged:
        were = "was" if len(unchanged) == 1 else "were"
        typer.echo(
            f"version {', '.join(map(str, unchanged))} of secret://{name} {were} not deleted; "
            "nothing changed"
        )


@app.command("destroy")
def destroy(
    name: _Name,
    version: _Versions,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
) -> None:
    """Erase the values of versions of NAME for good (the record of them stays)."""
    if not yes:
        raise InvalidRequestError("destroying cannot be undone; confirm with --yes")
    with open_vault() as vault:
        done = vault.destroy(name, version, actor=admin_actor())
    typer.echo(f"destroyed version {', '.join(map(str, done))} of secret://{name}")


app.command("rotate")(rotation.rotate)
app.command("overdue")(rotation.overdue)


@app.command("grant")
def grant(
    client: Annotated[
        str,
        typer.Argument(
            help="The client (from the manifest).", autocompletion=completion.client_names
        ),
    ],
    pattern: Annotated[str, typer.Argument(help="Path glob: erp/*, erp/**, erp/api-key.")],
    capabilities: Annotated[
        str, typer.Argument(help="Comma-separated: read, list, write.")
    ] = "read",
    manifest: ManifestOption = None,
) -> None:
    """Let CLIENT (of the manifest) read, list or write secrets matching PATTERN (default: deny)."""
    # A grant to a name no client has would wait for whoever is later given that name.
    require_client(load_manifest(manifest or settings().manifest), client)
    with open_vault() as vault:
        done = vault.policy.grant(client, pattern, [c.strip() for c in capabilities.split(",")])
    typer.echo(f"{done.client} may {', '.join(sorted(done.capabilities))} {done.pattern}")


@app.command("revoke-grant")
def revoke_grant(
    client: Annotated[
        str, typer.Argument(help="The client.", autocompletion=completion.client_names)
    ],
    pattern: Annotated[str, typer.Argument(help="The pattern it was granted.")],
) -> None:
    """Take back CLIENT's grant on PATTERN."""
    with open_vault() as vault:
        vault.policy.revoke(client, pattern)
    typer.echo(f"{client} no longer has a grant on {pattern}")


@app.command("grants")
def grants(
    client: Annotated[
        str | None, typer.Argument(help="Only this client.", autocompletion=completion.client_names)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The access policy: who may do what on which paths."""
    with open_vault() as vault:
        found = vault.policy.grants(client)
    if as_json:
        print_json(
            {
                "grants": [
                    {
                        "client": item.client,
                        "pattern": item.pattern,
                        "capabilities": sorted(item.capabilities),
                    }
                    for item in found
                ]
            }
        )
        return
    for item in found:
        typer.echo(f"{item.client}  {item.pattern}  {','.join(sorted(item.capabilities))}")


def _info_json(info: SecretInfo) -> dict[str, Any]:
    due = info.due_at()
    return {
        "name": info.name,
        "owner": info.owner,
        "kind": info.kind,
        "description": info.description,
        "current_version": info.current_version,
        "rotate_every_seconds": info.rotate_every,
        "max_age_seconds": info.max_age,
        "overlap_seconds": info.overlap,
        "rotator": info.rotator,
        "rotator_options": dict(info.rotator_config),
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
        "last_rotated_at": iso(info.last_rotated_at),
        "rotation_due_at": iso(due),
        "certificate_not_after": iso(info.not_after),
    }


def _version_json(info: VersionInfo) -> dict[str, Any]:
    return {
        "version": info.version,
        "stage": info.stage,
        "created_at": iso(info.created_at),
        "created_by": info.created_by,
        "valid_until": iso(info.valid_until),
        "deleted_at": iso(info.deleted_at),
        "destroyed_at": iso(info.destroyed_at),
    }
