"""``interlock doctor``: the preflight, one line per check, exit 1 when any check fails.

Warnings alone exit 0. ``--json`` prints ``{"checks": [...], "ok": bool}``
(docs/cli.md). The checks are in :mod:`interlock.cli.preflight`; docs/doctor.md
says what each looks at and how to fix it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Final

import typer
from sqlalchemy import Engine

from interlock.cli.context import settings
from interlock.cli.options import ManifestOption
from interlock.cli.output import JsonOption, print_json
from interlock.cli.preflight import (
    Check,
    data_dir_check,
    keyring_check,
    manifest_check,
    port_checks,
    secrets_check,
    trust_anchors_check,
)
from interlock.cli.preflight_store import (
    audit_schema_check,
    binding_check,
    certificates_check,
    clock_skew_check,
    database,
    migrations_check,
    redis_check,
    rotation_check,
)
from interlock.cli.serve import DEFAULT_LISTEN, split_listen
from interlock.clock import Clock, utc_now
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.pki.authority import Pki

__all__ = ["diagnose", "doctor"]

_SHOWN: Final = {"ok": "ok", "warn": "warn", "fail": "FAIL", "skip": "skip"}
#: Checks that need what an earlier one could not provide say so and count for nothing.
_SKIPPED: Final = "needs {}, which failed above"
#: The checks of what the store holds (they need its schema).
_HELD: Final = ("store-binding", "secrets", "certificates", "secret-rotation")


def diagnose(
    current: Settings, manifest_path: Path, host: str, port: int, *, now: Clock = utc_now
) -> list[Check]:
    """Every check, in order; each that depends on a failed one is ``skip``."""
    check, manifest = manifest_check(manifest_path)
    checks = [check, data_dir_check(current)]
    keyring_result, keyring = keyring_check(current)
    checks.append(keyring_result)
    with contextlib.ExitStack() as stack:
        if keyring is not None:
            stack.callback(keyring.close)
        store_check, store = stack.enter_context(database("store-database", current.store_url))
        audit_check, audit = stack.enter_context(
            database("audit-database", current.audit_url, made_at_start=True)
        )
        checks += [store_check, audit_check]
        checks.append(audit_schema_check(audit) if audit else _skip("audit-schema", "the audit DB"))
        if store is None:
            checks += [_skip(n, "the store") for n in ("migrations", *_HELD)]
        else:
            schema = migrations_check(store)
            checks.append(schema)
            if schema.code == "not_initialised":  # an empty database: nothing more to read
                checks += [_skip(n, "a schema") for n in _HELD]
            else:
                checks += _with_keyring(current, store, keyring, manifest, now)
        checks.append(
            trust_anchors_check(current, manifest)
            if manifest
            else _skip("trust-anchors", "the manifest")
        )
        checks.append(redis_check(current))
        checks.append(clock_skew_check(store, now) if store else _skip("clock-skew", "the store"))
    checks += port_checks(current, host, port)
    return checks


def _with_keyring(
    current: Settings, store: Engine, keyring: Keyring | None, manifest: Manifest | None, now: Clock
) -> list[Check]:
    """The checks of what the store holds: binding, secrets, certificates, rotations."""
    checks = []
    if keyring is None:
        names = ("store-binding", "certificates", "secret-rotation")
        checks += [_skip(n, "the keyring") for n in names]
        deployment_id = None
    else:
        binding, deployment_id = binding_check(store, keyring)
        checks.append(binding)
    checks.append(
        secrets_check(current, store, manifest) if manifest else _skip("secrets", "the manifest")
    )
    if keyring is not None and deployment_id is not None:
        pki = Pki(store, keyring, deployment_id, current.trust_domain, now=now)
        checks += [certificates_check(pki), rotation_check(store, keyring, now)]
    elif keyring is not None:
        checks += [_skip(n, "the store binding") for n in ("certificates", "secret-rotation")]
    return checks


def _skip(name: str, needed: str) -> Check:
    return Check(name, "skip", _SKIPPED.format(needed))


def doctor(
    manifest: ManifestOption = None,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT serve will listen on (checked free).")
    ] = DEFAULT_LISTEN,
    as_json: JsonOption = False,
) -> None:
    """Check the deployment before serving: one line per check; exit 1 if any check fails."""
    current = settings()
    host, port = split_listen(listen)
    checks = diagnose(current, manifest or current.manifest, host, port)
    failed = any(check.status == "fail" for check in checks)
    if as_json:
        print_json(
            {
                "checks": [
                    {"name": c.name, "status": c.status, "detail": c.detail, "hint": c.hint or None}
                    for c in checks
                ],
                "ok": not failed,
            }
        )
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            hint = f"  (fix: {check.hint})" if check.hint and check.status != "ok" else ""
            typer.echo(f"{_SHOWN[check.status]:<4}  {check.name:<{width}}  {check.detail}{hint}")
    if failed:
        raise typer.Exit(1)
