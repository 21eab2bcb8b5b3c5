"""PrivacyRequests: creating, asking, retrying, resuming, leasing, extending, closing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from interlock.actors import Operator
from interlock.audit.entry import AuditEntry, Outcome
from interlock.audit.service import AuditLog
from interlock.audit.sink import AuditSink, MemorySink
from interlock.config.settings import Settings
from interlock.errors import InvalidRequestError, NotFoundError
from interlock.privacy import request_audit
from interlock.privacy.connectors import ConnectorAnswer, ConnectorError
from interlock.privacy.lineage import LineageIndex, load_subject_hasher
from interlock.privacy.request_worker import LEASE
from interlock.privacy.requests import PrivacyRequests
from interlock.sdk.receipts import verify_receipt
from interlock.store import Deployment, initialise
from interlock.testing.clock import ManualClock
from tests.privacy.request_support import (
    Crash,
    Scripted,
    factory,
    manifest,
    retryable,
    seen,
)

ALICE = Operator("admin:alice")
EMAIL = "Ada.Lovelace@Example.com"
NORMALISED = "ada.lovelace@example.com"
T0 = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    """A clock at the last day of January (for calendar-month deadlines)."""
    return ManualClock(T0)


@pytest.fixture
def sqlite_deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A deployment on SQLite (the byte-level checks read its file)."""
    created = initialise(
        Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'store.db'}")
    )
    yield created
    created.close()


class Kit:
    """A service with scripted connectors, a memory audit sink and an in-memory lineage."""

    def __init__(
        self,
        deployment: Deployment,
        tmp_path: Path,
        clock: ManualClock,
        audit: AuditSink | None = None,
        audit_engine: sa.Engine | None = None,
    ) -> None:
        self.deployment = deployment
        self.clock = clock
        self.audit = audit or MemorySink()
        self.hasher = load_subject_hasher(deployment.engine, deployment.keyring)
        self.lineage = LineageIndex(deployment.engine, self.hasher)
        self.erp = Scripted()
        self.crm = Scripted()
        self.phones = Scripted()
        self.manifest = manifest(tmp_path)
        self.audit_engine = audit_engine
        self.service = self.instance()
        self.subject = self.hasher.digest("email", NORMALISED)

    def instance(self, worker: str | None = None) -> PrivacyRequests:
        """Another service on the same store (another process, as far as leases go)."""
        return PrivacyRequests(
            self.deployment.engine,
            self.deployment.keyring,
            self.manifest,
            self.audit,
            self.lineage,
            self.hasher,
            clock=self.clock,
            connectors=factory({"erp": self.erp, "crm": self.crm, "phones": self.phones}),
            audit_engine=self.audit_engine,
            worker=worker,
        )

    def seen_by(self, *systems: str, first_index: int = 100) -> None:
        """The lineage saw the person reach ``systems`` (through order-sync)."""
        for number, system in enumerate(systems):
            seen(self.lineage, self.subject, system, audit_index=first_index + number)

    def erased_rows(self) -> int:
        """How many lineage rows erasures removed (the counts that survive them)."""
        with self.deployment.engine.connect() as connection:
            total = connection.execute(
                sa.text("SELECT COALESCE(SUM(rows), 0) FROM privacy_lineage_erased")
            ).scalar()
        return int(total or 0)

    def entries(self, action: str, system: str | None = None) -> list[Any]:
        """The memory sink's entries of ``action`` (for ``system``)."""
        assert isinstance(self.audit, MemorySink)
        return [
            e
            for e in self.audit.entries
            if e.action == action and (system is None or e.details.get("system") == system)
        ]


@pytest.fixture
def kit(deployment: Deployment, tmp_path: Path, clock: ManualClock) -> Iterator[Kit]:
    """A kit on each store backend."""
    made = Kit(deployment, tmp_path, clock)
    yield made
    made.lineage.close()


@pytest.fixture
def lite(sqlite_deployment: Deployment, tmp_path: Path, clock: ManualClock) -> Iterator[Kit]:
    """A kit on SQLite only."""
    made = Kit(sqlite_deployment, tmp_path, clock)
    yield made
    made.lineage.close()


# -- creating -------------------------------------------------------------------------


def test_create_asks_the_systems_the_trace_found_plus_those_named(kit: Kit) -> None:
    kit.seen_by("erp", "crm")
    view = kit.service.create("erase", "email", EMAIL, actor=ALICE, systems=["billing"])
    assert view.id.startswith("dsr_")
    assert len(view.id) == 28
    assert {s.system: s.connector for s in view.systems} == {
        "billing": "manual",
        "crm": "sql",
        "erp": "webhook",
    }
    assert {s.system: s.status for s in view.systems}["billing"] == "manual-pending"
    assert [s.integrations for s in view.systems if s.system == "erp"] == [("order-sync",)]
    assert view.deadline == datetime(2026, 2, 28, 9, 30, tzinfo=UTC)  # a calendar month
    assert view.status == "open"
    assert not view.overdue
    (created,) = kit.entries(request_audit.CREATE)
    assert created.details["systems"] == 3
    assert created.actor == "admin:alice"
    assert view.created_index == 0
    assert NORMALISED not in json.dumps(view.as_json())
    assert EMAIL not in json.dumps(view.as_json())


def test_the_system_the_data_came_from_is_asked_with_the_one_that_received_it(
    kit: Kit,
) -> None:
    # One flow: the CRM received the person's data from the ERP, which holds it too.
    seen(kit.lineage, kit.subject, "crm", sender="erp", audit_index=7)
    view = kit.service.create("erase", "email", EMAIL, actor=ALICE)
    assert sorted(s.system for s in view.systems) == ["crm", "erp"]
    assert {s.integrations for s in view.systems} == {("order-sync",)}


def test_a_system_whose_connector_knows_other_kinds_is_manual(kit: Kit) -> None:
    kit.seen_by("phones")
    view = kit.service.create("access", "email", EMAIL, actor=ALICE)
    assert [(s.system, s.connector) for s in view.systems] == [("phones", "manual")]


@pytest.mark.parametrize(
    ("kind", "subject_kind", "identifier", "extra", "message"),
    [
        ("delete", "email", EMAIL, {}, "one of access, export, erase, rectify"),
        ("access", "passport", "X1", {}, "declared: customer_id, email"),
        ("access", "email", "not-an-address", {}, "is not valid"),
        ("access", "email", EMAIL, {"corrections": {"name": "x"}}, "only a rectify"),
        ("rectify", "email", EMAIL, {}, "at least one correction"),
        ("rectify", "email", EMAIL, {"corrections": {"subject": "x"}}, "not 'subject'"),
        ("access", "email", EMAIL, {"systems": ["nowhere"]}, "no system named 'nowhere'"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_written(  # noqa: PLR0917  (a case per parameter)
    lite: Kit, kind: str, subject_kind: str, identifier: str, extra: Any, message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        lite.service.create(kind, subject_kind, identifier, actor=ALICE, **extra)
    assert lite.service.list() == []
    assert lite.entries(request_audit.CREATE) == []


def test_an_unknown_request_is_not_found(lite: Kit) -> None:
    with pytest.raises(NotFoundError):
        lite.service.get("dsr_nothing")


# -- asking and closing ---------------------------------------------------------------


def test_an_access_request_asks_each_system_once_and_closes_completed(kit: Kit) -> None:
    kit.seen_by("erp", "crm")
    view = kit.service.create("access", "email", EMAIL, actor=ALICE)
    assert kit.service.run_due() == 3  # two systems asked, one request closed
    assert kit.service.run_due() == 0
    assert [c[:4] for c in kit.erp.calls] == [("access", view.id, "email", NORMALISED)]
    closed = kit.service.get(view.id)
    assert closed.status == "closed"
    assert closed.outcome == "completed"
    erp = next(s for s in closed.systems if s.system == "erp")
    assert erp.status == "done"
    assert erp.records == 1
    assert erp.attempts == 1
    assert erp.answer_digest is not None
    assert erp.answer_digest.startswith("sha256:")
    (asked,) = kit.entries(request_audit.ASK, "erp")
    (answered,) = kit.entries(request_audit.ANSWER, "erp")
    assert erp.asked_index is not None
    assert erp.answered_index is not None
    assert asked.details["attempt"] == 1
    assert answered.details["answer_digest"] == erp.answer_digest
    (close,) = kit.entries(request_audit.CLOSE)
    assert close.details["outcome"] == "completed"
    assert str(close.details["statement"]).startswith("sha256:")
    with kit.deployment.engine.connect() as connection:
        sealed = connection.execute(sa.text("SELECT sealed FROM privacy_requests")).scalar()
    assert sealed is None  # the identifier went with the open request
    assert kit.erased_rows() == 0  # only an erasure removes lineage
    assert len(kit.lineage.find(kit.subject)) == 2


def test_an_erasure_removes_the_lineage_when_it_closes(kit: Kit) -> None:
    kit.seen_by("erp")
    kit.service.create("erase", "email", EMAIL, actor=ALICE)
    kit.service.run_due()
    assert kit.lineage.find(kit.subject) == []
    assert kit.erased_rows() == 1  # the count survives the rows


def test_an_incomplete_erasure_keeps_the_trace_of_the_system_that_failed(kit: Kit) -> None:
    """A retry finds the system again: it was not 'completed' having asked nobody."""
    kit.seen_by("erp", "crm")
    kit.erp.script = [ConnectorError("the webhook answered HTTP 400", retryable=False)]
    first = kit.service.create("erase", "email", EMAIL, actor=ALICE)
    kit.service.run_due()
    assert kit.service.get(first.id).outcome == "incomplete"
    assert [r.receiver for r in kit.lineage.find(kit.subject)] == ["erp"]
    assert kit.erased_rows() == 1  # crm's row: crm erased the person
    retry = kit.service.create("erase", "email", EMAIL, actor=ALICE)
    assert [s.system for s in retry.systems] == ["erp"]
    kit.service.run_due()
    assert kit.service.get(retry.id).outcome == "completed"
    assert [c[0] for c in kit.erp.calls] == ["erase", "erase"]
    assert kit.lineage.find(kit.subject) == []


def test_a_request_nobody_received_closes_at_once(kit: Kit) -> None:
    view = kit.service.create("erase", "email", EMAIL, actor=ALICE)
    assert view.systems == ()
    assert kit.service.run_due() == 1
    assert kit.service.get(view.id).outcome == "completed"


def test_a_retryable_failure_waits_and_succeeds_later(kit: Kit) -> None:
    kit.seen_by("erp")
    kit.erp.script = [retryable(), retryable()]
    view = kit.service.create("access", "email", EMAIL, actor=ALICE)
    assert kit.service.run_due() == 1
    erp = kit.service.get(view.id).systems[0]
    assert erp.status == "pending"
    assert erp.attempts == 1
    assert erp.next_attempt == T0 + timedelta(minutes=1)
    assert erp.error == "the webhook answered HTTP 503"
    assert kit.service.run_due() == 0  # not due yet
    kit.clock.advance(timedelta(minutes=1))
    assert kit.service.run_due() == 1
    erp = kit.service.get(view.id).systems[0]
    assert erp.attempts == 2
    assert erp.next_attempt == kit.clock.now + timedelta(minutes=5)
    kit.clock.advance(timedelta(minutes=5))
    kit.service.run_due()
    closed = kit.service.get(view.id)
    assert closed.status == "closed"
    assert closed.systems[0].status == "done"
    assert closed.systems[0].error is None
    assert [e.details["attempt"] for e in kit.entries(request_audit.ASK)] == [1, 2, 3]
    assert len(kit.entries(request_audit.ANSWER)) == 1


def test_the_system_fails_after_the_last_retry(kit: Kit) -> None:
    kit.seen_by("erp")
    kit.erp.script = [retryable() for _ in range(5)]
    view = kit.service.create("erase", "email", EMAIL, actor=ALICE)
    for _ in range(5):
        kit.service.run_due()
        kit.clock.advance(timedelta(hours=3))
    closed = kit.service.get(view.id)
    assert closed.systems[0].status == "failed"
    assert closed.systems[0].attempts == 5
    assert closed.outcome == "incomplete"
    (answer,) = kit.entries(request_audit.ANSWER)
    assert answer.details["status"] == "failed"
    assert answer.outcome.result == "failure"
    assert answer.reason == "the webhook answered HTTP 503"


def test_a_non_retryable_failure_fails_at_once(kit: Kit) -> None:
    kit.seen_by("erp", "crm")
    kit.erp.script = [ConnectorError("the webhook's answer is not JSON", retryable=False)]
    view = kit.service.create("access", "email", EMAIL, actor=ALICE)
    kit.service.run_due()
    closed = kit.service.get(view.id)
    statuses = {s.system: (s.status, s.error) for s in closed.systems}
    assert statuses["erp"] == ("failed", "the webhook's answer is not JSON")
    assert statuses["crm"] == ("done", None)
    assert closed.outcome == "incomplete"
    assert len(kit.erp.calls) == 1


def test_an_unexpected_connector_exception_is_a_retryable_failure_named_by_its_type(
    kit: Kit,
) -> None:
    """Not a ConnectorError (a moved CA file, a driver's bug): the system is retried later.

    Its text may carry the identifier or a path, so only the type is recorded.
    """
    kit.seen_by("erp", "crm")
    kit.erp.script = [FileNotFoundError(f"/etc/ca/{NORMALISED}.pem")]
    view = kit.service.create("erase", "email", EMAIL, actor=ALICE)
    assert kit.service.run_due() == 2  # raised nothing: both systems asked
    statuses = {s.system: s for s in kit.service.get(view.id).systems}
    assert statuses["crm"].status == "done"
    erp = statuses["erp"]
    assert (erp.status, erp.attempts) == ("pending", 1)
    assert erp.next_attempt == T0 + timedelta(minutes=1)
    assert erp.error is not None
    assert "FileNotFoundError" in erp.error
    assert NORMALISED not in erp.error
    assert "/etc/ca" not in erp.error
    kit.clock.advance(timedelta(minutes=1))
    kit.service.run_due()
    assert kit.service.get(view.id).outcome == "completed"


def test_an_answer_that_cannot_be_stored_fails_the_system_and_the_next_request_goes_on(
    kit: Kit,
) -> None:
    """NaN in an answer has no canonical JSON: erp fails, and a newer request is still asked."""
    kit.seen_by("erp")
    bob = kit.hasher.digest("email", "bob@example.com")
    seen(kit.lineage, bob, "crm", audit_index=200)
    kit.erp.script = [ConnectorAnswer("done", 1, {"x": float("nan")})]
    first = kit.service.create("access", "email", EMAIL, actor=ALICE)
    kit.clock.advance(timedelta(seconds=1))
    second = kit.service.create("erase", "email", "bob@example.com", actor=ALICE)
    kit.service.run_due()
    failed = kit.service.get(first.id)
    (erp,) = failed.systems
    assert (erp.status, erp.answer_digest) == ("failed", None)
    assert erp.error is not None
    assert "ValueError" in erp.error
    assert failed.outcome == "incomplete"
    assert len(kit.erp.calls) == 1  # failed at once: the same answer would come again
    assert kit.service.get(second.id).outcome == "completed"
    assert len(kit.crm.calls) == 1


def test_a_request_that_cannot_be_advanced_does_not_hold_up_the_others(kit: Kit) -> None:
    """One request's fault (here its sealed identifier no longer opens) stops only that one."""
    kit.seen_by("erp")
    first = kit.service.create("access", "email", EMAIL, actor=ALICE)
    kit.clock.advance(timedelta(seconds=1))
    second = kit.service.create("access", "email", EMAIL, actor=ALICE)
    with kit.deployment.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE privacy_requests SET sealed = :junk WHERE id = :id"),
            {"junk": b"\x00" * 64, "id": first.id},
        )
    with capture_logs() as logs:
        assert kit.service.run_due() == 2  # the second request: one system, then closed
    assert kit.service.get(first.id).status == "open"
    assert kit.service.get(second.id).status == "closed"
    (failure,) = [e for e in logs if e["event"] == "privacy_request_advance_failed"]
    assert failure["request"] == first.id
    assert NORMALISED not in repr(logs)
    # The lease is released: the next run tries the request again.
    with kit.deployment.engine.connect() as connection:
        owner = connection.execute(
            sa.text("SELECT lease_owner FROM privacy_requests WHERE id = :id"), {"id": first.id}
        ).scalar()
    assert owner is None


def test_a_crash_between_asking_and_the_answer_resumes_at_the_call(kit: Kit) -> None:
    kit.seen_by("erp")
    kit.erp.script = [Crash()]
    view = kit.service.create("erase", "email", EMAIL, actor=ALICE)
    with pytest.raises(Crash):
        kit.service.run_due()
    erp = kit.service.get(view.id).systems[0]
    assert erp.status == "asked"
    assert erp.attempts == 1
    assert erp.asked_index is not None
    # Another process (the first never came back) picks it up once the lease has gone.
    kit.clock.advance(LEASE + timedelta(seconds=1))
    kit.instance("second").run_due()
    done = kit.service.get(view.id)
    assert done.status == "closed"
    assert done.systems[0].status == "done"
    assert done.systems[0].attempts == 1
    assert len(kit.entries(request_audit.ASK)) == 1  # no second entry for the same attempt
    assert len(kit.entries(request_audit.ANSWER)) == 1
    assert len(kit.entries(request_audit.CLOSE)) == 1
    # Asked twice, with the same request id (the webhook's Idempotency-Key is built from it).
    assert [c[1] for c in kit.erp.calls] == [view.id, view.id]


def test_a_crashed_worker_keeps_its_lease_until_it_expires(kit: Kit) -> None:
    kit.seen_by("erp")
    view = kit.service.create("erase", "email", EMAIL, actor=ALICE)
    first = kit.instance("first")
    first.worker._release = lambda request_id: None  # type: ignore[method-assign]  # dies holding it
    kit.erp.script = [Crash()]
    with pytest.raises(Crash):
        first.run_due()
    second = kit.instance("second")
    assert second.run_due() == 0
    kit.clock.advance(LEASE + timedelta(seconds=1))
    assert second.run_due() == 2
    assert kit.service.get(view.id).status == "closed"


def test_one_worker_at_a_time_holds_a_request(kit: Kit) -> None:
    kit.seen_by("erp")
    view = kit.service.create("access", "email", EMAIL, actor=ALICE)
    other = kit.instance("other")
    inside: list[int] = []
    kit.erp.during = lambda: inside.append(other.run_due())
    assert kit.instance("one").run_due() == 2
    assert inside == [0]  # the other worker found the request leased
    assert len(kit.erp.calls) == 1
    assert kit.service.get(view.id).status == "closed"


# -- manual systems, extensions, export -----------------------------------------------------


def test_a_manual_system_waits_for_the_operators_confirmation(kit: Kit) -> None:
    view = kit.service.create("erase", "email", EMAIL, actor=ALICE, systems=["billing"])
    assert kit.service.run_due() == 0
    assert kit.service.get(view.id).systems[0].status == "manual-pending"
    with pytest.raises(InvalidRequestError, match="done or not_found"):
        kit.service.confirm(view.id, "billing", "failed", actor=ALICE, note="n")
    with pytest.raises(NotFoundError):
        kit.service.confirm(view.id, "erp", "done", actor=ALICE, note="n")
    kit.service.confirm(view.id, "billing", "done", actor=ALICE, note="deleted in the UI")
    with pytest.raises(InvalidRequestError, match="not waiting"):
        kit.service.confirm(view.id, "billing", "done", actor=ALICE, note="again")
    assert kit.service.run_due() == 1
    closed = kit.service.get(view.id)
    assert closed.status == "closed"
    assert closed.systems[0].status == "done"
    (answer,) = kit.entries(request_audit.ANSWER)
    assert answer.actor == "admin:alice"
    assert answer.reason == "deleted in the UI"


def test_extensions_follow_article_12_3(lite: Kit) -> None:
    view = lite.service.create("access", "email", EMAIL, actor=ALICE, systems=["billing"])
    with pytest.raises(InvalidRequestError, match="needs a reason"):
        lite.service.extend(view.id, months=1, reason="  ", actor=ALICE)
    with pytest.raises(InvalidRequestError, match="1 or 2 months"):
        lite.service.extend(view.id, months=3, reason="complex", actor=ALICE)
    once = lite.service.extend(view.id, months=1, reason="many systems", actor=ALICE)
    assert once.deadline == datetime(2026, 3, 31, 9, 30, tzinfo=UTC)
    with pytest.raises(InvalidRequestError, match="two further months"):
        lite.service.extend(view.id, months=2, reason="more", actor=ALICE)
    twice = lite.service.extend(view.id, months=1, reason="still more", actor=ALICE)
    assert twice.deadline == datetime(2026, 4, 30, 9, 30, tzinfo=UTC)
    assert twice.extension_reason == "many systems\nstill more"
    assert [e.reason for e in lite.entries(request_audit.EXTEND)] == ["many systems", "still more"]


def test_no_extension_after_the_first_month(lite: Kit) -> None:
    view = lite.service.create("access", "email", EMAIL, actor=ALICE, systems=["billing"])
    lite.clock.advance(timedelta(days=29))
    assert lite.service.get(view.id).overdue
    assert [v.id for v in lite.service.list("overdue")] == [view.id]
    with pytest.raises(InvalidRequestError, match="first month has passed"):
        lite.service.extend(view.id, months=1, reason="late", actor=ALICE)


def test_the_export_bundle_gathers_every_answer(kit: Kit) -> None:
    kit.seen_by("erp", "crm")
    kit.crm.script = [ConnectorAnswer("not_found", 0, [])]
    view = kit.service.create("export", "email", EMAIL, actor=ALICE)
    with pytest.raises(InvalidRequestError, match="not every system"):
        kit.service.export_bundle(view.id, actor=ALICE)
    assert kit.entries(request_audit.EXPORT) == []  # nothing handed out, nothing recorded
    kit.service.run_due()
    bundle = kit.service.export_bundle(view.id, actor=ALICE)
    (exported,) = kit.entries(request_audit.EXPORT)  # the data left Interlock: to whom
    assert (exported.actor, exported.details["request"]) == ("admin:alice", view.id)
    assert exported.volume.records == 1
    assert bundle["format"] == "interlock-dsr-export/1"
    assert bundle["request"] == view.id
    assert bundle["subject_kind"] == "email"
    assert bundle["data"] == {"crm": [], "erp": {"email": NORMALISED}}
    sources = {s["system"]: s for s in bundle["sources"]}
    assert sources["crm"]["status"] == "not_found"
    assert sources["erp"]["records"] == 1
    assert sources["erp"]["integrations"] == ["order-sync"]


def test_a_completed_erasure_deletes_the_answers_kept_for_the_persons_earlier_requests(
    kit: Kit,
) -> None:
    """Interlock's own copy of the person's data goes with the erasure; digests stay."""
    kit.seen_by("erp")
    bob = kit.hasher.digest("email", "bob@example.com")
    seen(kit.lineage, bob, "crm", audit_index=200)
    access = kit.service.create("access", "email", EMAIL, actor=ALICE)
    other = kit.service.create("export", "email", "bob@example.com", actor=ALICE)
    kit.service.run_due()
    kit.seen_by("erp", first_index=300)  # access closed: the lineage is the erasure's trace
    erase = kit.service.create("erase", "email", EMAIL, actor=ALICE)
    kit.service.run_due()
    assert kit.service.get(erase.id).outcome == "completed"
    with kit.deployment.engine.connect() as connection:
        kept: dict[str, bytes | None] = dict(
            connection.execute(
                sa.text("SELECT request_id, answer FROM privacy_request_systems")
            ).all()
        )
    assert kept[access.id] is None
    assert kept[other.id] is not None  # another person's answers are untouched
    (erp,) = kit.service.get(access.id).systems
    assert erp.answer_digest is not None  # what the receipt proves is kept
    with pytest.raises(InvalidRequestError, match="erasure of the same person"):
        kit.service.export_bundle(access.id, actor=ALICE)
    assert kit.entries(request_audit.EXPORT) == []
    assert kit.service.export_bundle(other.id, actor=ALICE)["data"] == {
        "crm": {"email": "bob@example.com"}
    }


def test_an_incomplete_erasure_keeps_the_answers(lite: Kit) -> None:
    """Only a completed erasure deletes them: the person may still ask for the export."""
    lite.seen_by("erp", "crm")
    access = lite.service.create("access", "email", EMAIL, actor=ALICE)
    lite.service.run_due()
    lite.crm.script = [ConnectorError("the statement failed", retryable=False)]
    lite.service.create("erase", "email", EMAIL, actor=ALICE)
    lite.service.run_due()
    assert set(lite.service.export_bundle(access.id, actor=ALICE)["data"]) == {"crm", "erp"}


def test_only_access_and_export_requests_have_a_bundle(lite: Kit) -> None:
    view = lite.service.create("erase", "email", EMAIL, actor=ALICE)
    with pytest.raises(InvalidRequestError, match="has no export"):
        lite.service.export_bundle(view.id, actor=ALICE)


def test_a_rectification_hands_the_corrections_to_the_connector(lite: Kit) -> None:
    lite.seen_by("erp")
    lite.service.create("rectify", "email", EMAIL, actor=ALICE, corrections={"name": "Ada King"})
    lite.service.run_due()
    assert lite.erp.calls[0][0] == "rectify"
    assert lite.erp.calls[0][4] == {"name": "Ada King"}


# -- evidence and secrecy -------------------------------------------------------------------


def test_the_receipt_and_nothing_in_clear(
    sqlite_deployment: Deployment, tmp_path: Path, clock: ManualClock
) -> None:
    """Real audit log: a receipt with proofs; the identifier in no database file and no log."""
    log = AuditLog.open(
        Settings(data_dir=tmp_path / "data", audit_database_url=f"sqlite:///{tmp_path / 'a.db'}"),
        sqlite_deployment.keyring,
        witnesses=[],
    )
    try:
        kit = Kit(sqlite_deployment, tmp_path, clock, log.sink, log.store.engine)
        # The gateway's entries of the two calls that carried the person's data.
        gateway_call = AuditEntry(
            time=T0,
            actor="client:order-sync",
            action="gateway.request",
            integration="order-sync",
            outcome=Outcome(result="success", status=200),
            details={"subjects": 1},
        )
        first = log.sink.record(gateway_call)
        log.sink.record(gateway_call)
        kit.seen_by("erp", "crm", first_index=first)
        with capture_logs() as logs:
            view = kit.service.create("access", "email", EMAIL, actor=ALICE)
            kit.service.run_due()
        receipt = kit.service.receipt(view.id)
        assert receipt is not None
        closed = kit.service.get(view.id)
        summary = verify_receipt(receipt, [log.keys.verifier])
        assert summary.request_id == view.id
        indexes = {e["index"] for e in receipt["entries"]}
        for system in closed.systems:
            assert {system.asked_index, system.answered_index} <= indexes
        assert {closed.created_index, closed.closed_index, first, first + 1} <= indexes
        assert receipt["statement"]["request"] == view.id
        kit.lineage.close()
    finally:
        log.close()
    sqlite_deployment.engine.dispose()
    for needle in (NORMALISED, EMAIL, NORMALISED.encode().hex()):
        text = needle.encode()
        assert text not in (tmp_path / "store.db").read_bytes()
        assert text not in (tmp_path / "a.db").read_bytes()
        assert needle not in json.dumps(receipt)
        assert needle not in repr(logs)
    assert any(entry["event"] == "privacy_request_closed" for entry in logs)
