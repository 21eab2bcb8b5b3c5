"""The gateway's model-free path writes exactly what the model's path writes, or declines."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import select

from interlock.audit import entry
from interlock.audit.entry import Decision, decision_entry, encode_decision, encode_entry
from interlock.audit.errors import AuditUnavailableError
from interlock.audit.frontier import Frontier
from interlock.audit.pseudonyms import Pseudonymiser
from interlock.audit.schema import BODIES
from interlock.audit.service import AuditLog
from interlock.audit.verify import verify_log
from interlock.config.settings import Settings
from interlock.crypto import Keyring

KEY = Pseudonymiser(b"k" * 32)
# Any text, lone surrogates included, and lengths on both sides of every bound.
_any = st.text(max_size=210) | st.sampled_from(["", "x" * 200, "x" * 201, "\ud800"])
_optional = st.none() | _any
_credential = st.sampled_from(
    ["", "secret il_live_abcdefghijklmnopqrstuvwxyz012345", "postgres://u:pw@db/x"]
)


@st.composite
def decisions(draw: st.DrawFn) -> Decision:
    """Decisions in and out of the model's bounds."""
    # "jti": a unique detail, its value encoded per entry into a shared template.
    keys = (
        st.sampled_from(["jti", "message_id", "event_id"])
        | st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)
        | _any
    )
    values = (
        _any
        | st.text(max_size=3).map(lambda s: s * 200)
        | st.integers(-(2**54), 2**54)
        | st.booleans()
    )
    return Decision(
        time_us=draw(st.integers(0, 4_000_000_000_000_000)),
        actor=draw(_any),
        action=draw(st.sampled_from(["gateway.request", "Gateway", "a" * 101])),
        integration=draw(_optional),
        source=draw(_optional),
        target=draw(_optional),
        data_categories=tuple(draw(st.lists(_any, max_size=3))),
        records=draw(st.integers(-1, 2**53)),
        bytes=draw(st.sampled_from([0, 812, 2**53 - 1, 2**53, -5])),
        result=draw(st.sampled_from(["success", "failure", "partial_failure", "ok"])),
        status=draw(st.none() | st.integers(-1, 1_000_000)),
        correlation_id=draw(st.none() | _any | _credential.map(lambda c: c[:200] or "r")),
        reason=draw(st.none() | _any | _credential),
        details=draw(st.dictionaries(keys, values | _credential, max_size=4)),
        client_ip=draw(_optional),
    )


@settings(max_examples=200, deadline=None)
@given(decisions(), st.booleans())
def test_the_fast_path_equals_the_model_or_declines(decision: Decision, hide_ip: bool) -> None:
    fast = encode_decision(decision, KEY, hide_ip)
    try:
        model = encode_entry(decision_entry(decision), KEY, pseudonymise_ip=hide_ip)
    except (ValidationError, ValueError):
        assert fast is None  # the model refuses it: the fast path never accepts it
        return
    assert fast is None or fast == model


@settings(max_examples=200, deadline=None)
@given(decisions(), decisions(), st.booleans())
def test_a_remembered_template_never_changes_another_decisions_bytes(
    first: Decision, other: Decision, hide_ip: bool
) -> None:
    """Encode one decision, then one sharing its repeating fields: each as its model says.

    The second takes the first's remembered parts (same who, what, integration,
    result and details) with every per-request field of its own, in or out of
    bounds.
    """
    second = first._replace(
        time_us=other.time_us,
        records=other.records,
        bytes=other.bytes,
        status=other.status,
        correlation_id=other.correlation_id,
        reason=other.reason,
        client_ip=other.client_ip,
    )
    for decision in (first, second, first):
        fast = encode_decision(decision, KEY, hide_ip)
        try:
            model = encode_entry(decision_entry(decision), KEY, pseudonymise_ip=hide_ip)
        except (ValidationError, ValueError):
            assert fast is None
            continue
        assert fast is None or fast == model


def test_details_equal_in_python_but_not_in_json_get_their_own_parts() -> None:
    """True == 1 (and hash alike): a detail of either kind is encoded as it is."""
    base = Decision(
        1_733_400_000_000_001, "client:a", "gateway.request", "i", "s", "t", ("c",), 1, 5,
        "success", 200, "req", None, {"flag": True}, "192.0.2.10",
    )  # fmt: skip
    flags: list[Any] = [True, 1, True, 1.0, 0]
    for flag in flags:
        details = {"flag": flag}
        decision = base._replace(details=details)
        fast = encode_decision(decision, KEY)
        model = encode_entry(decision_entry(decision), KEY)
        if type(details["flag"]) is float:  # the model coerces it; the fast path declines
            assert fast is None
            continue
        assert fast == model


@pytest.mark.parametrize(
    "jti",
    [
        "a",
        "b",
        "t eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",  # masked, as the model masks it
        "x" * 500,
        "x" * 501,  # over the model's bound: declined, never encoded unchecked
        "\ud800",  # a lone surrogate: declined
        "\x00 with a NUL",  # where the template cuts its text: escaped like any value
        7,
        2**53,
        True,
        1.5,
    ],
)
@pytest.mark.parametrize("name", ["jti", "message_id", "event_id"])
def test_a_token_id_goes_into_a_shared_template_and_encodes_as_the_model(
    jti: object, name: str
) -> None:
    """Details that differ per entry (a token's jti) share one template: same bytes as the model.

    The jti is left out of the remembered parts and checked, masked and
    encoded for each entry; the templates do not grow with every token. The
    same for a message's and an event's id (an entry per message on each side).
    """
    base = Decision(
        1_733_400_000_000_001, "client:a", "token.issue", None, None, None, (), 0, 0,
        "success", 200, "req", None, {"jti": "a"}, "192.0.2.10",
    )  # fmt: skip
    encode_decision(base._replace(details={"scope": "orders.read", name: "first"}), KEY)
    remembered = len(entry._TEMPLATES)
    details: Any = {"scope": "orders.read", name: jti, "route": "/t"}  # a value of any type
    decision = base._replace(details=details)
    for _ in range(2):
        fast = encode_decision(decision, KEY)
        try:
            model = encode_entry(decision_entry(decision), KEY)
        except (ValidationError, ValueError):
            assert fast is None
            continue
        assert fast is None or fast == model
        if type(jti) is str and len(jti) <= 500 and jti != "\ud800":
            assert fast == model
        assert b"eyJzdWIiOiJ4In0" not in model
    assert len(entry._TEMPLATES) <= remembered + 1  # this decision's details: one template


def test_a_typical_decision_takes_the_fast_path_with_credentials_masked() -> None:
    decision = Decision(
        time_us=1_733_400_000_123_456,
        actor="client:order-sync",
        action="gateway.request",
        integration="order-sync",
        source="erp",
        target="crm",
        data_categories=("system.orders",),
        records=1,
        bytes=812,
        result="success",
        status=200,
        correlation_id="req-1",
        reason="upstream said Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
        details={"route": "GET /orders/{id}", "method": "GET", "subjects": 0, "x": True},
        client_ip="192.0.2.10",
    )
    fast = encode_decision(decision, KEY)
    assert fast is not None
    assert fast == encode_entry(decision_entry(decision), KEY)
    assert b"eyJzdWIiOiJ4In0" not in fast
    assert b"192.0.2.10" not in fast
    assert b'"time":"2024-12-05T12:00:00.123456Z"' in fast
    # A detail that holds a credential is masked every time, not only the first.
    leaky = decision._replace(
        details={"note": "t eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}
    )
    for _ in range(2):
        body = encode_decision(leaky, KEY)
        assert body is not None
        assert b"eyJzdWIiOiJ4In0" not in body
        assert body == encode_entry(decision_entry(leaky), KEY)


def test_repeated_reasons_times_and_addresses_encode_as_the_model_does() -> None:
    """The fast path's memories (clean reasons, the second's text, IP pseudonyms) change nothing.

    A reason holding a credential is masked every time; a decision in the next
    second (or an earlier one) gets its own time; an address gets the pseudonym
    of its own key, not another pseudonymiser's.
    """
    base = Decision(
        1_733_400_000_999_999, "client:a", "gateway.request", None, None, None, (), 0, 0,
        "failure", 401, "req", "edge: allowed, the proxy forwards", {}, "192.0.2.10",
    )  # fmt: skip
    leaky = "upstream said Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    other = Pseudonymiser(b"o" * 32)
    for decision in (
        base,
        base,
        base._replace(time_us=base.time_us + 1),  # the next second
        base._replace(time_us=base.time_us - 1),
        base._replace(time_us=base.time_us - 10**6),  # a second back
        base._replace(reason=leaky),
        base._replace(reason=leaky),
        base._replace(client_ip="192.0.2.11"),
    ):
        for key in (KEY, other, KEY):
            fast = encode_decision(decision, key)
            assert fast is not None
            assert fast == encode_entry(decision_entry(decision), key)
            assert b"eyJzdWIiOiJ4In0" not in fast
    assert KEY.pseudonym("ip", "192.0.2.10") == Pseudonymiser(b"k" * 32).pseudonym(
        "ip", "192.0.2.10"
    )
    assert KEY.pseudonym("ip", "192.0.2.10") != other.pseudonym("ip", "192.0.2.10")
    assert KEY.pseudonym("ip", "192.0.2.10") != KEY.pseudonym("subject", "192.0.2.10")


# An anonymous caller refused: a decision every path encodes.
_REFUSED_CALL = Decision(
    1_733_400_000_000_000, "anonymous", "gateway.request", None, None, None, (), 0, 0,
    "failure", 401, "req", None, {}, None,
)  # fmt: skip


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    """An audit log of its own (SQLite), closed after the test."""
    keyring = Keyring.create(tmp_path / "keyring.json")
    settings_ = Settings(data_dir=tmp_path, audit_database_url=f"sqlite:///{tmp_path / 'a.db'}")
    opened = AuditLog.open(settings_, keyring, witnesses=[])
    try:
        yield opened
    finally:
        opened.close()


def test_decisions_recorded_later_land_in_the_log(log: AuditLog) -> None:
    sink = log.sink
    assert sink.record_decision_later(_REFUSED_CALL)
    assert not sink.record_decision_later(_REFUSED_CALL._replace(actor="x" * 201))  # model path
    log.writer.close()
    assert log.store.size() == 1
    assert verify_log(log.store.engine).size == 1


def test_a_decision_the_writer_cannot_take_is_counted_without_being_encoded(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overload costs a check, not an encoding: the entry is dropped and counted as lost."""
    log.writer.close()  # takes nothing more, as a full queue

    def encode(*_args: object) -> None:
        raise AssertionError("encoded an entry the writer could not take")

    monkeypatch.setattr("interlock.audit.service.encode_decision", encode)
    monkeypatch.setattr("interlock.audit.service.encode_entry", encode)
    assert log.sink.record_decision_later(_REFUSED_CALL)
    log.sink.record_later(decision_entry(_REFUSED_CALL))
    assert log.writer.lost == 2
    assert log.store.size() == 0


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 70), st.integers(0, 70))
def test_bulk_tree_updates_equal_leaf_by_leaf(start: int, count: int) -> None:
    leaves = [bytes([n % 256]) * 32 for n in range(start + count)]
    one, bulk = Frontier(), Frontier()
    for leaf in leaves[:start]:
        one.append(leaf)
        bulk.append(leaf)
    nodes = [(n.level, n.index, n.hash) for leaf in leaves[start:] for n in one.append(leaf)]
    assert bulk.extend(leaves[start:]) == nodes
    assert (bulk.size, bulk.root()) == (one.size, one.root())


def test_a_durable_decision_is_committed_before_it_returns_with_the_models_bytes(
    log: AuditLog,
) -> None:
    """record_decision_async: its index once committed, the bytes record_async would write."""
    decision = Decision(
        1_733_400_000_000_000, "client:bench", "gateway.request", "personal", "erp", "crm",
        ("user.contact.email",), 1, 812, "success", 200, "req-1", None,
        {"route": "GET /customers/{id}", "method": "GET", "auth": "api_key"},
        "192.0.2.10",
    )  # fmt: skip

    async def both() -> tuple[int | None, int, int | None]:
        fast = await log.sink.record_decision_async(decision)
        model = await log.sink.record_async(decision_entry(decision))
        declined = await log.sink.record_decision_async(decision._replace(actor="x" * 201))
        return fast, model, declined

    fast, model, declined = asyncio.run(both())
    assert (fast, model, declined) == (0, 1, None)  # the declined one queued nothing
    assert log.store.size() == 2  # both durable before record_*_async returned
    with log.store.engine.connect() as connection:
        bodies = [
            bytes(b) for (b,) in connection.execute(select(BODIES.c.body).order_by(BODIES.c.idx))
        ]
    assert bodies[0] == bodies[1]


def test_a_durable_decision_the_writer_cannot_take_raises_unavailable(log: AuditLog) -> None:
    """Closed (or full): AuditUnavailableError, for the gateway to withhold the answer."""
    log.writer.close()
    with pytest.raises(AuditUnavailableError):
        asyncio.run(log.sink.record_decision_async(_REFUSED_CALL))
    assert log.store.size() == 0
