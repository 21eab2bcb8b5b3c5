"""``privacy.drift`` over a real audit log written through the log's own sink (SQLite)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from interlock.audit import AuditEntry, AuditVerificationError, Outcome, Volume
from interlock.audit.prune import prune
from interlock.audit.service import AuditLog
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.privacy.drift import DriftReport, Unused, find_drift
from interlock.testing.clock import ManualClock
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "interlock.yaml"
ORDER_CATEGORIES = (
    "user.name",
    "user.contact.email",
    "user.contact.address.postal_code",
    "user.behavior.purchase_history",
)


@pytest.fixture
def manifest() -> Manifest:
    """The example deployment: order-sync (ERP DE -> CRM US, SCC) and analytics-feed (-> NL)."""
    return load_manifest(EXAMPLE)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    """An open audit log in a SQLite file."""
    settings = Settings(
        data_dir=tmp_path / "data", audit_database_url=f"sqlite:///{tmp_path / 'audit.db'}"
    )
    opened = AuditLog.open(settings, Keyring.create(tmp_path / "keyring.json"), witnesses=[])
    yield opened
    opened.close()


@pytest.fixture
def clock() -> ManualClock:
    """The time drift is asked at."""
    return ManualClock()


def request(
    clock: ManualClock,
    age: timedelta,
    *,
    integration: str = "order-sync",
    route: str = "GET /orders/{id}",
    client: str = "order-sync",
    forwarded: bool = True,
    **changes: object,
) -> AuditEntry:
    """A ``gateway.request`` entry as the gateway writes it, ``age`` before ``clock``."""
    fields: dict[str, object] = {
        "time": clock.now - age,
        "actor": f"client:{client}",
        "action": "gateway.request",
        "integration": integration,
        "source": "erp",
        "target": "crm" if integration == "order-sync" else "warehouse",
        "data_categories": ORDER_CATEGORIES if integration == "order-sync" else (),
        "volume": Volume(records=1, bytes=300) if forwarded else Volume(),
        "outcome": Outcome(
            result="success" if forwarded else "failure", status=200 if forwarded else 403
        ),
        "details": {"route": route, "method": route.split(maxsplit=1)[0]},
    }
    fields.update(changes)
    return AuditEntry.model_validate(fields)


def drift(log: AuditLog, manifest: Manifest, clock: ManualClock, days: int = 30) -> DriftReport:
    """The drift of the last ``days``."""
    return find_drift(log.store.engine, manifest, since=timedelta(days=days), now=clock)


def test_a_matching_trail_has_no_undeclared_flow_and_lists_unused_routes(
    log: AuditLog, manifest: Manifest, clock: ManualClock
) -> None:
    """Declared flows only: nothing undeclared; the routes and integration not called are listed."""
    log.sink.record(request(clock, timedelta(days=1)))
    log.sink.record(request(clock, timedelta(days=2), forwarded=False))
    report = drift(log, manifest, clock)
    assert report.undeclared == ()
    assert Unused("integration", "analytics-feed", "analytics-feed", True) in report.unused
    assert Unused("route", "order-sync", "GET /orders", True) in report.unused
    assert Unused("route", "order-sync", "GET /orders/{id}", True) not in report.unused
    volume = next(v for v in report.volumes if v.integration == "order-sync")
    assert (volume.forwarded, volume.refused, volume.records, volume.bytes) == (1, 1, 1, 300)
    assert report.as_json()["entries"] == {"analysed": 2, "pruned": 0, "unrouted": 0}


def test_flows_the_manifest_does_not_declare_are_each_named(
    log: AuditLog, manifest: Manifest, clock: ManualClock
) -> None:
    """An undeclared integration, route, client, category, target and destination country."""
    log.sink.record(request(clock, timedelta(days=3), integration="retired", route="GET /old"))
    log.sink.record(request(clock, timedelta(days=2), route="GET /gone"))
    log.sink.record(request(clock, timedelta(days=2), client="intruder"))
    log.sink.record(request(clock, timedelta(hours=5), data_categories=("user.health",)))
    log.sink.record(request(clock, timedelta(hours=4), target="warehouse"))
    report = drift(log, manifest, clock)
    found = {(u.kind, u.integration, u.value) for u in report.undeclared}
    assert found == {
        ("integration", "retired", "retired"),
        ("route", "order-sync", "GET /gone"),
        ("client", "order-sync", "intruder"),
        ("category", "order-sync", "user.health"),
        ("target", "order-sync", "warehouse"),
        ("country", "order-sync", "NL"),  # the warehouse's location: no transfer covers it
    }
    volume = next(v for v in report.volumes if v.integration == "retired")
    assert (volume.declared, volume.forwarded) == (False, 1)


def test_a_country_the_entry_recorded_is_checked_even_after_the_location_changed(
    log: AuditLog, manifest: Manifest, clock: ManualClock
) -> None:
    """The gateway records where the target was; drift checks that, not today's location.

    Before, drift derived the country from the current manifest only, so a CRM
    that sat in BR when the data went there (no transfer declared for BR) and has
    since been edited back to US looked declared.
    """
    moved = {"route": "GET /orders/{id}", "method": "GET", "target_country": "BR"}
    log.sink.record(request(clock, timedelta(days=1), details=moved))
    here = {"route": "GET /orders/{id}", "method": "GET", "target_country": "US"}
    log.sink.record(request(clock, timedelta(days=1), details=here))
    found = {(u.kind, u.integration, u.value) for u in drift(log, manifest, clock).undeclared}
    assert found == {("country", "order-sync", "BR")}


def test_the_country_of_the_upstream_that_received_the_request_is_checked(
    log: AuditLog, manifest: Manifest, clock: ManualClock
) -> None:
    """The gateway records the upstream's country; one outside the EEA needs a transfer.

    Before, drift read only the target's country, so a request the gateway
    forwarded to a system in the US on an EEA-only integration looked declared
    (privacy review, finding 5). The ERP (DE) the routes forward to is declared.
    """
    sales = "GET /sales/lines"
    for country in ("US", "DE"):
        details = {"route": sales, "method": "GET", "upstream_country": country}
        entry = request(
            clock,
            timedelta(days=1),
            integration="analytics-feed",
            route=sales,
            client="analytics-feed",
            details=details,
        )
        log.sink.record(entry)
    erp = {"route": "GET /orders/{id}", "method": "GET", "upstream_country": "DE"}
    log.sink.record(request(clock, timedelta(days=1), details=erp))
    found = {(u.kind, u.integration, u.value) for u in drift(log, manifest, clock).undeclared}
    assert found == {("country", "analytics-feed", "US")}


def test_a_refused_request_moves_no_data_and_makes_no_finding(
    log: AuditLog, manifest: Manifest, clock: ManualClock
) -> None:
    """A refused call by an unknown client on a retired route is counted, not reported."""
    log.sink.record(
        request(clock, timedelta(days=1), client="intruder", route="GET /x", forwarded=False)
    )
    report = drift(log, manifest, clock)
    assert report.undeclared == ()
    assert next(v for v in report.volumes if v.integration == "order-sync").refused == 1


def test_since_excludes_older_entries(
    log: AuditLog, manifest: Manifest, clock: ManualClock
) -> None:
    """An undeclared flow 40 days back is outside --since 30d and inside --since 60d."""
    log.sink.record(request(clock, timedelta(days=40), integration="retired", route="GET /old"))
    log.sink.record(request(clock, timedelta(days=1)))
    assert drift(log, manifest, clock, days=30).undeclared == ()
    older = drift(log, manifest, clock, days=60).undeclared
    assert [(u.kind, u.integration, u.requests) for u in older] == [("integration", "retired", 1)]
    clock.advance(timedelta(days=30))
    assert drift(log, manifest, clock, days=60).undeclared == ()


def test_pruned_entries_are_counted_not_analysed(
    log: AuditLog, manifest: Manifest, clock: ManualClock
) -> None:
    """Bodies removed by retention: counted per integration; 'never used' becomes uncertain."""
    for hours in (1, 2, 3):
        log.sink.record(
            request(
                clock,
                timedelta(days=10, hours=hours),
                integration="analytics-feed",
                route="GET /sales/lines",
                client="analytics-feed",
            )
        )
    log.sink.record(request(clock, timedelta(days=1)))
    reports = prune(log.store, log.keys, {"analytics-feed": timedelta(days=5)}, now=clock.now)
    assert [r.pruned for r in reports] == [3]
    report = drift(log, manifest, clock)
    assert report.pruned == 3
    feed = next(v for v in report.volumes if v.integration == "analytics-feed")
    assert (feed.pruned, feed.forwarded) == (3, 0)
    assert Unused("integration", "analytics-feed", "analytics-feed", False) in report.unused
    assert report.undeclared == ()


def test_a_log_that_fails_verification_gets_no_report(
    log: AuditLog, manifest: Manifest, clock: ManualClock, tmp_path: Path
) -> None:
    """A body rewritten behind the log's back (triggers dropped): refused, entry named."""
    log.sink.record(request(clock, timedelta(days=1)))
    log.sink.record(request(clock, timedelta(days=1), integration="retired", route="GET /old"))
    with sqlite3.connect(tmp_path / "audit.db") as connection:
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            connection.execute(f"DROP TRIGGER {name}")
        connection.execute(
            "UPDATE audit_bodies SET body = CAST(replace(CAST(body AS TEXT), 'retired', "
            "'order-sy') AS BLOB) WHERE idx = 1"
        )
    connection.close()
    with pytest.raises(AuditVerificationError) as caught:
        drift(log, manifest, clock)
    assert caught.value.index == 1


def test_the_json_shape_is_stable(log: AuditLog, manifest: Manifest, clock: ManualClock) -> None:
    """The published keys, in the documented form."""
    log.sink.record(request(clock, timedelta(hours=1), route="GET /gone"))
    document = drift(log, manifest, clock).as_json()
    assert list(document) == [
        "format", "window", "log", "entries", "undeclared", "unused", "volumes",
    ]  # fmt: skip
    assert document["format"] == "interlock-privacy-drift/1"
    assert document["window"] == {
        "since": "2025-12-02T00:00:00.000000Z",
        "until": "2026-01-01T00:00:00.000000Z",
    }
    assert document["undeclared"] == [
        {
            "kind": "route",
            "integration": "order-sync",
            "value": "GET /gone",
            "requests": 1,
            "first_seen": "2025-12-31T23:00:00.000000Z",
            "last_seen": "2025-12-31T23:00:00.000000Z",
        }
    ]
    assert set(document["volumes"][0]) == {
        "integration", "declared", "forwarded", "refused", "records", "bytes", "pruned",
    }  # fmt: skip
    assert set(document["unused"][0]) == {"kind", "integration", "value", "certain"}
    assert document["log"] == {"origin": document["log"]["origin"], "size": 1, "verified": True}
