"""``--live``: nothing is kept past its integration's ``retention`` (the item ``retention``).

Two stores of the deployment hold data whose life the manifest's ``retention``
bounds, and each has its own pruning; the probe counts, per integration, what
that pruning should already have removed, using the pruning's own selection:

* the audit log: ``interlock audit prune`` removes an entry's body (correlation
  id, client, pseudonymised subjects, ...) once it is older than the
  integration's retention. The probe counts the bodies
  :func:`interlock.audit.prune.stale_bodies` selects for ``now - retention -``
  :data:`AUDIT_PRUNE_PERIOD`: the prune runs from cron or a timer, at least
  daily (docs/audit.md), so a body may outlive the retention by one day; older
  ones mean the prune is not running.
* the lineage index (``privacy_lineage``): the running gateway deletes rows
  past their ``expires_at`` every :data:`LINEAGE_PRUNE_PERIOD` (one hour,
  :func:`interlock.privacy.lineage.keep_pruned`). The probe counts the rows
  :func:`interlock.privacy.lineage.expired_counts` finds at ``now -`` that
  period: the rows ``LineageIndex.prune`` would delete, by its own condition.

Any such entry or row fails ``retention`` for its integration, with the count
and the fix. Lineage rows of integrations no longer in the manifest fail for
the deployment, and so do their audit bodies past the retention the
integration was last declared with (:func:`interlock.audit.prune.retentions`,
as the prune finds it) or, when no stored manifest version declares one, any
of their bodies at all: nothing bounds how long they are kept. A store that
cannot be read is a failed finding for the deployment, never an exception; a
missing audit log file holds no bodies (and is ``audit_trail``'s failure), and
is not created.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from interlock.audit.prune import retentions, stale_bodies
from interlock.audit.storage import LogStore, create_audit_engines
from interlock.check.results import Finding
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.config.units import format_duration
from interlock.errors import InterlockError
from interlock.privacy.lineage import PRUNE_SECONDS, expired_counts

__all__ = ["AUDIT_PRUNE_PERIOD", "LINEAGE_PRUNE_PERIOD", "retention_findings"]

#: How often ``interlock audit prune`` is expected to run: the grace of an audit body.
AUDIT_PRUNE_PERIOD: Final = timedelta(days=1)
#: How often the gateway prunes the lineage index: the grace of a lineage row.
LINEAGE_PRUNE_PERIOD: Final = timedelta(seconds=PRUNE_SECONDS)

_ITEM: Final = "retention"


def retention_findings(
    manifest: Manifest, settings: Settings, engine: Engine, now: datetime
) -> list[Finding]:
    """``retention`` per integration: audit bodies and lineage rows kept past the retention.

    ``engine`` is the deployment's store (the lineage index); the audit log is
    opened from ``settings`` as ``interlock audit prune`` opens it.
    """
    try:
        lineage = expired_counts(engine, now - LINEAGE_PRUNE_PERIOD)
    except SQLAlchemyError as exc:
        reason = f"the lineage index cannot be read ({type(exc).__name__})"
        return [Finding(_ITEM, None, "fail", reason, fix=_FIX_STORE, live=True)]
    audit = _stale_audit(manifest, settings, engine, now)
    if isinstance(audit, Finding):
        return [audit]
    stale, removed, where = audit
    found = [
        _finding(name, flow.retention, stale.get(name, 0), lineage.get(name, 0), where)
        for name, flow in manifest.integrations.items()
    ]
    if removed:
        found.append(_removed_finding(removed))
    orphans = {name: n for name, n in sorted(lineage.items()) if name not in manifest.integrations}
    if orphans:
        listed = ", ".join(f"{name} ({n})" for name, n in orphans.items())
        reason = (
            f"lineage rows more than {format_duration(LINEAGE_PRUNE_PERIOD)} past their expiry, "
            f"of integrations no longer in the manifest: {listed}"
        )
        found.append(Finding(_ITEM, None, "fail", reason, fix=_FIX_LINEAGE, live=True))
    return found


def _finding(name: str, keep: timedelta, bodies: int, rows: int, where: str) -> Finding:
    retention = format_duration(keep)
    audit_grace = format_duration(AUDIT_PRUNE_PERIOD)
    lineage_grace = format_duration(LINEAGE_PRUNE_PERIOD)
    evidence = (
        f"retention: {retention}",
        f"{where}: {bodies} entry bodies older than the retention plus {audit_grace} "
        "(what interlock audit prune removes)",
        f"lineage index: {rows} rows more than {lineage_grace} past their expires_at",
    )
    reasons: list[str] = []
    fixes: list[str] = []
    if bodies:
        reasons.append(
            f"{bodies} audit entry bodies are older than the retention ({retention}) plus one "
            f"prune period ({audit_grace}): interlock audit prune has not removed them"
        )
        fixes.append(_FIX_AUDIT)
    if rows:
        reasons.append(
            f"{rows} lineage rows are more than {lineage_grace} past their expiry: the "
            "gateway's lineage pruning has not removed them"
        )
        fixes.append(_FIX_LINEAGE)
    if reasons:
        return Finding(
            _ITEM, name, "fail", "; ".join(reasons), evidence, fix="; ".join(fixes), live=True
        )
    reason = (
        f"no audit entry body or lineage row is kept past the retention ({retention}) "
        "beyond one prune period"
    )
    return Finding(_ITEM, name, "pass", reason, evidence, live=True)


def _removed_finding(removed: Mapping[str, int | None]) -> Finding:
    """The deployment's failure for bodies of removed integrations kept past any retention."""
    unbounded = [name for name, count in removed.items() if count is None]
    past = {name: count for name, count in removed.items() if count}
    reasons = []
    if past:
        listed = ", ".join(f"{name} ({n})" for name, n in past.items())
        reasons.append(
            "audit entry bodies older than the retention their integration was last declared "
            f"with plus one prune period, of integrations no longer in the manifest: {listed}"
        )
    if unbounded:
        reasons.append(
            "audit entry bodies of integrations no longer in the manifest whose retention no "
            f"stored manifest version gives, kept without a bound: {', '.join(unbounded)}"
        )
    fix = _FIX_AUDIT + (
        " (with --removed-retention DURATION for the integrations whose retention is unknown)"
        if unbounded
        else ""
    )
    return Finding(_ITEM, None, "fail", "; ".join(reasons), fix=fix, live=True)


def _stale_audit(
    manifest: Manifest, settings: Settings, engine: Engine, now: datetime
) -> tuple[Mapping[str, int], Mapping[str, int | None], str] | Finding:
    """Stale bodies by integration, those of removed integrations, where they were counted.

    A removed integration maps to its stale bodies (only if any) under the retention it was
    last declared with, or to None when no stored manifest version declares it. The failure
    to read them is a finding.
    """
    url = settings.audit_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        # As audit_findings: opening would create an empty log, and a check writes nothing.
        return {}, {}, f"audit log (none at {url.removeprefix('sqlite:///')})"
    try:
        audit_engine, writer = create_audit_engines(url)
    except (SQLAlchemyError, InterlockError, OSError) as exc:
        reason = f"the audit database cannot be opened ({type(exc).__name__})"
        return Finding(_ITEM, None, "fail", reason, fix=_FIX_OPEN, live=True)
    store = LogStore(audit_engine, writer)
    try:
        declared = {name: flow.retention for name, flow in manifest.integrations.items()}
        plan = retentions(store, engine, declared)
        with store.engine.connect() as connection:
            counts = {
                name: connection.execute(
                    select(func.count()).select_from(
                        stale_bodies(name, now - keep - AUDIT_PRUNE_PERIOD).subquery()
                    )
                ).scalar_one()
                for name, keep in plan.keep.items()
            }
    except SQLAlchemyError as exc:
        reason = f"the audit log cannot be read ({type(exc).__name__})"
        return Finding(_ITEM, None, "fail", reason, fix=_FIX_OPEN, live=True)
    finally:
        store.dispose()
    removed: dict[str, int | None] = {name: counts[name] for name in plan.removed if counts[name]}
    removed.update(dict.fromkeys(plan.unknown))
    return counts, removed, "audit log"


_FIX_AUDIT: Final = (
    "run `interlock audit prune` now, and schedule it at least daily (cron or a systemd timer)"
)
_FIX_LINEAGE: Final = (
    "keep the gateway running (it prunes lineage rows past their expiry every hour) and look "
    "for 'lineage pruning failed' in its log"
)
_FIX_OPEN: Final = "check INTERLOCK_AUDIT_DATABASE_URL and that this host may read the audit log"
_FIX_STORE: Final = "check INTERLOCK_DATABASE_URL and that this host may read the store"
