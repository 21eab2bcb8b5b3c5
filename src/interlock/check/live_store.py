"""``--live``: the audit log verifies and is fresh; stored data is sealed (evidence at rest).

``audit_trail`` (the deployment): :func:`interlock.audit.verify.verify_log`,
exactly as ``interlock audit verify`` runs it (the configured witness file and
witness key included; a configured witness file that is missing fails once the
log holds entries), must pass, and the newest signed tree head must be
younger than :func:`checkpoint_limit`: twice ``INTERLOCK_AUDIT_CHECKPOINT_SECONDS``
(a running gateway signs one at least every period, so two periods tolerate one
missed beat), or 24 hours when that setting is 0 (heads only per batch). An
empty log passes verification but fails freshness: nothing has been recorded.

``encryption_at_rest`` (the deployment): the keyring's KEK backend (``file`` or
``pkcs11``), and up to :data:`SAMPLE` values of every registered sealed column
(:func:`interlock.tables.sealed_columns`) must be envelope blobs of *this*
keyring, under a KEK version it holds, whose wrapped data key authenticates
under that KEK (the record's own associated data is not known here, so the
bulk is not opened; the wrapping is). Values are never printed: a failure
names the table and column only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from interlock.audit.errors import AuditVerificationError
from interlock.audit.storage import LogStore, create_audit_engines
from interlock.audit.verify import verify_log
from interlock.audit.witness import configured_witness
from interlock.check.results import Finding
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.crypto.envelope import inspect_unverified
from interlock.errors import InterlockError
from interlock.proofs.cosignature import CosignatureVerifier
from interlock.store.sealed import SealedColumn

__all__ = ["SAMPLE", "audit_findings", "checkpoint_limit", "sealing_findings"]

#: How many values of each sealed column are examined.
SAMPLE: Final = 20
_IDLE_LIMIT: Final = timedelta(hours=24)


def checkpoint_limit(settings: Settings) -> timedelta:
    """How old the newest signed tree head may be (see the module's note)."""
    period = settings.audit_checkpoint_seconds
    return _IDLE_LIMIT if period <= 0 else timedelta(seconds=2 * period)


def audit_findings(settings: Settings, now: datetime) -> list[Finding]:
    """``audit_trail`` for the deployment: the log verifies and its newest head is recent."""
    item = "audit_trail"
    url = settings.audit_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        # As `audit verify` does: opening would create an empty log, and a check writes nothing.
        reason = f"no audit log at {url.removeprefix('sqlite:///')}"
        return [Finding(item, None, "fail", reason, fix=_FIX_OPEN, live=True)]
    try:
        engine, writer = create_audit_engines(url)
    except (SQLAlchemyError, InterlockError, OSError) as exc:
        reason = f"the audit database cannot be opened ({type(exc).__name__})"
        return [Finding(item, None, "fail", reason, fix=_FIX_OPEN, live=True)]
    store = LogStore(engine, writer)
    try:
        return [_audit(store, settings, now)]
    finally:
        store.dispose()


def _audit(store: LogStore, settings: Settings, now: datetime) -> Finding:
    item = "audit_trail"
    cosigners: list[CosignatureVerifier] = []
    try:
        witnessed = configured_witness(settings.audit_witness_file, store.size())
        if settings.audit_witness_key is not None:
            cosigners.append(CosignatureVerifier.parse(settings.audit_witness_key))
        report = verify_log(store.engine, witnessed=witnessed, cosigners=cosigners)
        last_us = store.last_checkpoint_us()
    except AuditVerificationError as exc:
        reason = f"the audit log does not verify: {exc}"
        return Finding(item, None, "fail", reason, ("interlock audit verify",), fix=_FIX_VERIFY,
                       live=True)  # fmt: skip
    except (SQLAlchemyError, InterlockError, OSError) as exc:
        reason = f"the audit log cannot be read ({type(exc).__name__}: {exc})"
        return Finding(item, None, "fail", reason, fix=_FIX_OPEN, live=True)
    evidence = (
        f"interlock audit verify: {report.size} entries, {report.checkpoints} signed tree heads, "
        f"{report.witnessed} witnessed; origin {report.origin or '-'}",
    )
    limit = checkpoint_limit(settings)
    if last_us is None:
        reason = "the audit log verifies but holds no signed tree head: nothing was recorded"
        return Finding(item, None, "fail", reason, evidence, fix=_FIX_STALE, live=True)
    signed = datetime.fromtimestamp(last_us / 1_000_000, UTC)
    age = now - signed
    if age > limit:
        reason = (
            f"the audit log verifies, but its newest signed tree head is {_span(age)} old "
            f"(limit {_span(limit)})"
        )
        return Finding(item, None, "fail", reason, evidence, fix=_FIX_STALE, live=True)
    reason = f"the audit log verifies; newest signed tree head {_span(age)} old"
    return Finding(item, None, "pass", reason, evidence, live=True)


def _span(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 2 * 86_400:
        return f"{seconds // 86_400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} h"
    if seconds >= 120:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def sealing_findings(
    engine: Engine, keyring: Keyring, columns: Sequence[SealedColumn]
) -> list[Finding]:
    """``encryption_at_rest`` for the deployment: the KEK backend and sampled sealed values."""
    item = "encryption_at_rest"
    backend = f"KEK backend {keyring.backend} ({keyring.describe()})"
    examined = 0
    bad: list[str] = []
    try:
        for sealed in columns:
            seen, wrong = _sample(engine, keyring, sealed)
            examined += seen
            if wrong:
                bad.append(f"{sealed.table.name}.{sealed.column} ({wrong} of {seen})")
    except SQLAlchemyError as exc:
        reason = f"the store cannot be read ({type(exc).__name__})"
        return [Finding(item, None, "fail", reason, (backend,), live=True)]
    evidence = (backend, f"{examined} stored values sampled in {len(columns)} sealed columns")
    if bad:
        reason = "values that are not sealed by this deployment's keyring: " + ", ".join(bad)
        fix = "re-seal or remove these rows; a keyring rotation must be followed by a re-wrap"
        return [Finding(item, None, "fail", reason, evidence, fix=fix, live=True)]
    if examined == 0:
        reason = f"the keyring is in place ({keyring.backend}); no sealed values are stored yet"
    else:
        reason = f"every sampled stored value is sealed by this keyring ({keyring.backend})"
    return [Finding(item, None, "pass", reason, evidence, live=True)]


def _sample(engine: Engine, keyring: Keyring, sealed: SealedColumn) -> tuple[int, int]:
    """(values examined, values not sealed by ``keyring``) of one column."""
    column = sealed.table.c[sealed.column]
    query = select(column).where(column.is_not(None)).limit(SAMPLE)
    with engine.connect() as connection:
        values = [row[0] for row in connection.execute(query)]
    wrong = sum(1 for value in values if not _sealed_by(keyring, value))
    return len(values), wrong


def _sealed_by(keyring: Keyring, value: object) -> bool:
    """Whether ``value`` is an envelope blob whose wrapped key authenticates under ``keyring``."""
    if isinstance(value, str):
        return False  # sealed blobs are bytes; text is plaintext at rest
    if not isinstance(value, bytes | bytearray | memoryview):
        return False
    blob = bytes(value)
    try:
        header = inspect_unverified(blob)
        if header.keyring_id != keyring.keyring_id or not keyring.has_version(header.kek_version):
            return False
        prefix = blob[: len(blob) - len(header.wrapped_key) - len(header.bulk)]
        # The envelope's header is the wrap's associated data (crypto/envelope.py).
        keyring.unwrap(header.wrapped_key, prefix, header.kek_version)
    except InterlockError:
        return False
    return True


_FIX_OPEN: Final = "check INTERLOCK_AUDIT_DATABASE_URL and that this host may read the audit log"
_FIX_VERIFY: Final = "run `interlock audit verify` and investigate the first bad entry it names"
_FIX_STALE: Final = (
    "run the gateway (it signs a tree head every INTERLOCK_AUDIT_CHECKPOINT_SECONDS) "
    "and check its audit writer"
)
