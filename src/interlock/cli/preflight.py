"""The preflight: what ``interlock doctor`` checks, and the subset ``serve`` refuses to start on.

A check is a small function returning a :class:`Check`: its name, a status
(ok, warn, fail, skip), a one-line detail and a hint for fixing it. Each calls
the domain function that enforces the same rule at run time — the key file's
permissions (:mod:`interlock.crypto.keyfile`, through ``open_keyring``), the
keyring/store binding (:func:`interlock.store.deployment.verify_binding`), the
schema revision (:mod:`interlock.store.migrate`), the port probe and the
``secret://`` references (:mod:`interlock.gateway.preflight`), the listings of
``pki list --expiring`` and ``secrets overdue`` — so a check and the refusal it
predicts cannot disagree. Nothing here writes: no migration, no DDL, no secret
value opened, no audit entry.

``serve`` opens the deployment first (keyring permissions, migrations, binding:
the same functions, which refuse with the same messages) and then runs
:func:`before_serve`: the manifest's secrets (per ``INTERLOCK_MISSING_SECRETS``)
and the listener and metrics ports, before anything is issued or bound.
The store-side checks live in :mod:`interlock.cli.preflight_store`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from interlock.cli.context import served_anchors
from interlock.config.loader import check_manifest
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.errors import InterlockError, did_you_mean
from interlock.gateway.preflight import check_port_free, secret_references
from interlock.gateway.tls import trust_context
from interlock.pki import LOCAL_CA_NAME
from interlock.secrets.vault import name_of, resolvable_names
from interlock.store import open_keyring
from interlock.validation.artifacts import route_artifacts

__all__ = [
    "Check",
    "PreflightError",
    "Status",
    "before_serve",
    "data_dir_check",
    "keyring_check",
    "manifest_check",
    "port_checks",
    "require",
    "secrets_check",
    "trust_anchors_check",
]

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    """One check's outcome; ``code`` is the error code a failure came from (serve's refusal)."""

    name: str
    status: Status
    detail: str
    hint: str = ""
    code: str = "preflight_failed"


def ok(name: str, detail: str) -> Check:
    """A passed check."""
    return Check(name, "ok", detail)


def failed(name: str, exc: InterlockError, hint: str) -> Check:
    """A failed check from the domain's own error (its message and code)."""
    return Check(name, "fail", " ".join(exc.message.split()), hint, exc.code)


class PreflightError(InterlockError):
    """``serve`` refused to start: a fatal check failed (the code of its cause)."""

    code = "preflight_failed"

    def __init__(self, check: Check) -> None:
        hint = f"; {check.hint}" if check.hint else ""
        super().__init__(f"{check.name}: {check.detail}{hint}")
        self.code = check.code


def require(checks: Iterable[Check]) -> None:
    """Raise :class:`PreflightError` for the first failed check (what ``serve`` refuses)."""
    for check in checks:
        if check.status == "fail":
            raise PreflightError(check)


# -- the manifest and the data directory -------------------------------------------


def manifest_check(path: Path) -> tuple[Check, Manifest | None]:
    """``interlock validate``'s verdict on the manifest, and the manifest when valid."""
    name = "manifest"
    report = check_manifest(path, route_artifacts)
    if report.manifest is None or report.errors:
        first = str(report.errors[0]) if report.errors else f"{path}: invalid manifest"
        more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        return Check(name, "fail", first + more, f"run `interlock validate {path}`"), None
    if report.warnings:
        count = len(report.warnings)
        detail = f"{path}: valid, {count} warning{'' if count == 1 else 's'}: {report.warnings[0]}"
        return Check(name, "warn", detail, f"run `interlock validate {path}`"), report.manifest
    return ok(name, f"{path}: valid"), report.manifest


def data_dir_check(settings: Settings) -> Check:
    """The data directory exists, is a directory, is 0700 and belongs to this user."""
    name, path = "data-dir", settings.data_dir
    try:
        info = path.stat()
    except FileNotFoundError:
        hint = "run `interlock init` (or set INTERLOCK_DATA_DIR)"
        return Check(name, "fail", f"no data directory at {path}", hint, "not_initialised")
    if not stat.S_ISDIR(info.st_mode):
        return Check(name, "fail", f"{path} is not a directory", "point INTERLOCK_DATA_DIR at one")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        detail = f"{path} is accessible by group or others (mode {mode:04o})"
        return Check(name, "fail", detail, f"run `chmod 700 {path}`")
    owner = _owner(name, path, info)
    return owner or ok(name, f"{path} (mode {mode:04o}, owner uid {info.st_uid})")


def _owner(name: str, path: Path, info: os.stat_result) -> Check | None:
    """A warning when ``path`` belongs to another user (readable to us as root only)."""
    if info.st_uid == os.geteuid():
        return None
    detail = f"{path} belongs to uid {info.st_uid}, not to the user running interlock"
    hint = f"run interlock as uid {info.st_uid}, or `chown` {path} to its user"
    return Check(name, "warn", f"{detail} (uid {os.geteuid()})", hint)


def keyring_check(settings: Settings) -> tuple[Check, Keyring | None]:
    """The keyring loads as ``serve`` loads it: 0600, no link, valid; and belongs to this user."""
    name = "keyring"
    try:
        keyring = open_keyring(settings)
    except InterlockError as exc:
        return failed(
            name, exc, "the keyring must be a 0600 file of this user (or the HSM's)"
        ), None
    if keyring.backend != "file":
        return ok(name, f"{keyring.keyring_id} in {keyring.describe()}"), keyring
    path = keyring.path
    info = path.lstat()
    owner = _owner(name, path, info)
    detail = f"{path} (mode {stat.S_IMODE(info.st_mode):04o}, KEK v{keyring.current_version})"
    return owner or ok(name, detail), keyring


# -- the manifest against the deployment -------------------------------------------


def secrets_check(settings: Settings, engine: Engine, manifest: Manifest) -> Check:
    """Every ``secret://`` reference of the manifest has a current value in the vault.

    Names only: which names have a readable current version is metadata. A
    missing one fails (``INTERLOCK_MISSING_SECRETS=refuse``, serve refuses) or
    warns (``start``: serve starts and those routes answer 503).
    """
    name = "secrets"
    references = secret_references(manifest)
    try:
        stored = resolvable_names(engine)
    except SQLAlchemyError as exc:  # the store failed: its own checks say why
        return Check(name, "skip", f"the vault cannot be read ({type(exc).__name__})")
    missing: dict[str, str] = {}
    for found in references:
        if name_of(found.reference) not in stored:
            missing.setdefault(found.reference, found.where)
    if not missing:
        distinct = len({r.reference for r in references})
        return ok(name, f"{distinct} secret:// reference(s), each with a current value")
    named = "; ".join(
        f"{reference} ({where}{did_you_mean(name_of(reference), stored)})"
        for reference, where in missing.items()
    )
    refuse = settings.missing_secrets == "refuse"
    return Check(
        name,
        "fail" if refuse else "warn",
        f"not in the vault: {named}",
        "store each with `interlock secrets put NAME`"
        + (", or set INTERLOCK_MISSING_SECRETS=start" if refuse else ""),
        "config_invalid",
    )


def trust_anchors_check(settings: Settings, manifest: Manifest) -> Check:
    """Each ``ca:`` of the systems and trusted issuers (and each ``jwks_file``) can be loaded."""
    name = "trust-anchors"
    anchors = served_anchors(settings)
    wanted: dict[str, str] = {}
    for system_name, system in manifest.systems.items():
        wanted.setdefault(system.ca, f"systems.{system_name}.ca")
    for issuer_name, issuer in manifest.trusted_issuers.items():
        wanted.setdefault(issuer.ca, f"trusted_issuers.{issuer_name}.ca")
    problems = []
    for anchor, where in wanted.items():
        if anchor == "system" or (anchor == f"pki:{LOCAL_CA_NAME}" and anchor not in anchors):
            continue  # the OS store; the local CA, kept in the store (ca.pem written by serve)
        try:
            trust_context(anchor, anchors, manifest.tls.min_version)
        except InterlockError as exc:
            problems.append(f"{where}: {exc.message}{did_you_mean(anchor, anchors)}")
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            problems.append(f"{where}: {anchor} cannot be loaded ({_reason(exc)})")
    for issuer_name, issuer in manifest.trusted_issuers.items():
        if issuer.jwks_file is not None and not os.access(issuer.jwks_file, os.R_OK):
            problems.append(
                f"trusted_issuers.{issuer_name}.jwks_file: cannot read {issuer.jwks_file}"
            )
    if problems:
        return Check(name, "fail", "; ".join(problems), "fix the path or the PEM file named")
    return ok(name, f"{len(wanted)} anchor(s): {', '.join(sorted(wanted)) or 'none'}")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__


# -- ports ---------------------------------------------------------------------------


def port_checks(
    settings: Settings, host: str, port: int, *, reuse_port: bool = False
) -> list[Check]:
    """The listener's port and the metrics listener's port can be bound (then closed again)."""
    hint = "stop what holds it, or pick another --listen"
    checks = [_port("listener-port", host, port, hint, reuse_port=reuse_port)]
    metrics = settings.metrics_address
    if metrics is None:
        checks.append(Check("metrics-port", "skip", "INTERLOCK_METRICS_LISTEN=off"))
    else:
        hint = "set INTERLOCK_METRICS_LISTEN to another HOST:PORT, or to off"
        checks.append(_port("metrics-port", *metrics, hint))
    return checks


def _port(name: str, host: str, port: int, hint: str, *, reuse_port: bool = False) -> Check:
    try:
        check_port_free(host, port, reuse_port=reuse_port)
    except InterlockError as exc:
        return failed(name, exc, hint)
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ok(name, f"{shown} is free")


def before_serve(
    settings: Settings,
    engine: Engine,
    manifest: Manifest | None,
    host: str,
    port: int,
    *,
    reuse_port: bool,
) -> list[Check]:
    """What ``serve`` runs once the deployment is open, before it issues or binds anything.

    ``manifest`` None (store mode): the secrets are checked where the version is loaded.
    """
    checks = [] if manifest is None else [secrets_check(settings, engine, manifest)]
    return checks + port_checks(settings, host, port, reuse_port=reuse_port)
