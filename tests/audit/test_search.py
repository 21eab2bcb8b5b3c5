"""The search index: written with each append, backfilled for an older log, pruned with bodies."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy.exc import DBAPIError

from interlock.audit import AuditEntry, Outcome
from interlock.audit.entry import Decision, encode_entry
from interlock.audit.errors import AuditError
from interlock.audit.prune import prune
from interlock.audit.pseudonyms import Pseudonymiser
from interlock.audit.schema import (
    BODIES,
    CORRELATION_BLOCK,
    SEARCH,
    SEARCH_BACKFILL,
    ensure_schema,
    grant_roles,
)
from interlock.audit.search import SearchQuery, _statement, search
from interlock.audit.search_index import _parsed, backfill, search_row
from interlock.audit.service import AuditLog
from interlock.audit.storage import create_audit_engines
from interlock.audit.verify import verify_log
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.proofs.checkpoint import open_checkpoint
from interlock.proofs.rfc9162 import leaf_hash, verify_inclusion
from tests.audit.conftest import T0, sample_entry
from tests.audit.test_postgres_roles import _as, roles  # noqa: F401  (the fixture)

PSEUDONYMS = Pseudonymiser(b"k" * 32)
_APPEND_LOCK = "SELECT pg_advisory_xact_lock(hashtext('interlock-audit-append'))"


def _fill(log: AuditLog) -> None:
    """12 entries: 0-5 order-sync, 6-8 billing (client billing-sync), 9-11 admin actions."""
    for i in range(6):
        log.sink.record(sample_entry(i))
    for i in range(6, 9):
        log.sink.record(
            sample_entry(
                i, integration="billing", actor="client:billing-sync", correlation_id="shared"
            )
        )
    for i in range(9, 12):
        log.sink.record(
            sample_entry(i, integration=None, actor="admin:alice", action="admin.keys.create")
        )


def _indexes(log: AuditLog, **query: object) -> list[int]:
    return [hit.index for hit in search(log.store, SearchQuery(**query)).hits]  # type: ignore[arg-type]


def test_each_filter_finds_exactly_its_entries_newest_first(audit_log: AuditLog) -> None:
    """Correlation id, client, integration, action and time each select through the index."""
    _fill(audit_log)
    assert _indexes(audit_log, correlation_id="req-3") == [3]
    assert _indexes(audit_log, correlation_id="shared") == [8, 7, 6]
    assert _indexes(audit_log, client="order-sync") == [5, 4, 3, 2, 1, 0]
    assert _indexes(audit_log, client="alice") == []  # an admin is not a client
    assert _indexes(audit_log, integration="billing") == [8, 7, 6]
    assert _indexes(audit_log, action="admin.keys.create") == [11, 10, 9]
    since, until = T0 + timedelta(minutes=4), T0 + timedelta(minutes=7)
    assert _indexes(audit_log, since=since, until=until) == [6, 5, 4]  # since <= t < until
    assert _indexes(audit_log, client="order-sync", since=since) == [5, 4]
    assert _indexes(audit_log, client="billing-sync", action="gateway.request") == [8, 7, 6]
    assert _indexes(audit_log, correlation_id="nobody") == []


def test_a_limit_keeps_the_newest_and_says_more_matched(audit_log: AuditLog) -> None:
    """``limit`` entries, newest first; ``truncated`` says there were more."""
    _fill(audit_log)
    result = search(audit_log.store, SearchQuery(integration="order-sync", limit=2))
    assert [h.index for h in result.hits] == [5, 4]
    assert result.truncated
    assert result.tree_size == 12
    assert not search(audit_log.store, SearchQuery(integration="order-sync", limit=6)).truncated


def test_hits_carry_the_entry_and_proofs_that_verify_against_the_signed_head(
    audit_log: AuditLog,
) -> None:
    """With proofs, each hit's proof checks its body's leaf hash against the checkpoint's root."""
    _fill(audit_log)
    result = search(audit_log.store, SearchQuery(correlation_id="shared"), proofs=True)
    assert result.checkpoint is not None
    head = open_checkpoint(result.checkpoint, [audit_log.keys.verifier])
    assert head.size == result.tree_size == 12
    for hit in result.hits:
        assert hit.entry["correlation_id"] == "shared"
        assert hit.time == T0 + timedelta(minutes=hit.index)
        assert hit.proof is not None
        verify_inclusion(hit.index, head.size, leaf_hash(hit.body), list(hit.proof), head.root)
    assert search(audit_log.store, SearchQuery(correlation_id="shared")).hits[0].proof is None


def test_the_client_address_is_never_indexed(audit_log: AuditLog) -> None:
    """Neither the address nor its pseudonym is in any index column."""
    audit_log.sink.record(sample_entry(0, client_ip="198.51.100.7"))
    with audit_log.store.engine.connect() as connection:
        row = connection.execute(sa.select(SEARCH)).one()
    stored = search(audit_log.store, SearchQuery()).hits[0].entry["client_ip"]
    assert stored.startswith("hmac-sha256:")
    assert not {"198.51.100.7", stored} & {str(value) for value in row}
    assert set(SEARCH.c.keys()) == {
        "idx", "time_us", "correlation_id", "client", "integration", "action"
    }  # fmt: skip


def test_the_index_is_append_only_like_the_log(audit_log: AuditLog) -> None:
    """UPDATE and DELETE of index rows (not pruned) and of backfill progress are refused."""
    _fill(audit_log)
    for statement in (
        sa.update(SEARCH).values(client="someone-else"),
        sa.delete(SEARCH).where(SEARCH.c.idx == 0),
        sa.update(SEARCH_BACKFILL).values(upto=99),
        sa.delete(SEARCH_BACKFILL),
    ):
        with (
            pytest.raises(DBAPIError, match=r"append-only|only once pruned"),
            audit_log.store.engine.begin() as connection,
        ):
            connection.execute(statement)
    assert _indexes(audit_log, client="order-sync") == [5, 4, 3, 2, 1, 0]


def test_pruning_removes_the_index_rows_with_the_bodies(audit_log: AuditLog) -> None:
    """A pruned entry is no longer found, the others are, the count says so, the log verifies."""
    _fill(audit_log)
    prune(
        audit_log.store,
        audit_log.keys,
        {"order-sync": timedelta(days=1)},
        now=T0 + timedelta(days=1, minutes=3),
    )
    assert _indexes(audit_log, client="order-sync") == [5, 4, 3]
    result = search(audit_log.store, SearchQuery(correlation_id="req-1"))
    assert result.hits == ()
    assert result.pruned == 3
    assert _indexes(audit_log, action="audit.prune") == [12]
    verify_log(audit_log.store.engine)


def _drop_index(url: str) -> None:
    """Turn the log into one made before the index (as an older release left it)."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE audit_search")
        connection.exec_driver_sql("DROP TABLE audit_search_backfill")
    engine.dispose()


def test_an_older_log_is_backfilled_on_open_resumably_without_pruned_bodies(
    settings: Settings, keyring: Keyring
) -> None:
    """Dropping the index and reopening rebuilds it from bodies, a chunk at a time."""
    log = AuditLog.open(settings, keyring, witnesses=[])
    _fill(log)
    prune(
        log.store, log.keys, {"billing": timedelta(days=1)}, now=T0 + timedelta(days=1, minutes=9)
    )
    log.close()
    _drop_index(settings.audit_url)

    engine, writer = create_audit_engines(settings.audit_url)  # opening backfills in full
    writer.dispose()
    engine.dispose()
    _drop_index(settings.audit_url)
    # Interrupted after two chunks of 4, then resumed: the same rows, each once.
    url = settings.audit_url
    engine = sa.create_engine(url)
    ensure_schema(engine)  # records the size to backfill up to: 13
    lock = None if url.startswith("sqlite") else _APPEND_LOCK
    first = backfill(engine, lock_sql=lock, chunk=4, limit=2)
    assert (first.indexed, first.without_body, first.done) == (6, 2, False)  # 0-5; 6, 7 pruned
    rest = backfill(engine, lock_sql=lock, chunk=4)
    assert (rest.indexed, rest.without_body, rest.done) == (4, 1, True)  # 9-12; 8 pruned
    assert backfill(engine, lock_sql=lock).indexed == 0  # nothing left: one look-up
    engine.dispose()

    log = AuditLog.open(settings, keyring, witnesses=[])
    try:
        assert _indexes(log, integration="billing") == []  # pruned before the backfill
        assert _indexes(log, client="order-sync") == [5, 4, 3, 2, 1, 0]
        assert _indexes(log, action="audit.prune") == [12]
        log.sink.record(sample_entry(20, correlation_id="after"))
        assert _indexes(log, correlation_id="after") == [13]
        result = search(log.store, SearchQuery())
        assert result.backfill_pending == 0
        assert result.pruned == 3
    finally:
        log.close()


def test_an_index_row_that_disagrees_with_its_entry_is_refused(
    sqlite_settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    """An index row rewritten to point elsewhere is caught against the entry, not believed."""
    log = AuditLog.open(sqlite_settings, keyring, witnesses=[])
    _fill(log)
    log.close()
    with sqlite3.connect(sqlite_settings.audit_url.removeprefix("sqlite:///")) as connection:
        connection.execute("DROP TRIGGER audit_search_no_update")
        connection.execute("UPDATE audit_search SET correlation_id = 'req-4' WHERE idx = 2")
    log = AuditLog.open(sqlite_settings, keyring, witnesses=[])
    try:
        with pytest.raises(AuditError, match="entry 2 does not match"):
            search(log.store, SearchQuery(correlation_id="req-4"))
    finally:
        log.close()


_TEXT = st.text(min_size=1, max_size=40)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    actor=_TEXT,
    action=st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True),
    correlation_id=st.none() | _TEXT,
    ip=st.none() | _TEXT,
)
def test_the_fast_reader_agrees_with_a_full_parse(
    actor: str, action: str, correlation_id: str | None, ip: str | None
) -> None:
    """Any entry: the row read from the canonical head equals the one from json.loads."""
    entry = AuditEntry(
        time=T0,
        actor=actor,
        action=action,
        outcome=Outcome(result="success"),
        correlation_id=correlation_id,
        client_ip=ip,
    )
    for pseudonymise in (True, False):
        try:
            body = encode_entry(entry, PSEUDONYMS, pseudonymise_ip=pseudonymise)
        except UnicodeError:  # a lone surrogate: never encoded, never indexed
            continue
        expected = _parsed(body.decode())
        assert expected is not None
        client = actor.removeprefix("client:") if actor.startswith("client:") else None
        assert search_row(7, body, 1, "i") == (7, 1, expected[2], client or None, "i", action)
        assert expected[:2] == (action, actor)


def test_bytes_that_are_not_an_entry_get_no_row() -> None:
    """Garbage, another JSON type or a missing action: no row; another key order is parsed."""
    for body in (b"\xff", b"[1]", b'{"actor":"client:a"}', b"{", b'{"action":1,"actor":"b"}'):
        assert search_row(0, body, 0, None) is None
    reordered = b'{"actor":"client:a","correlation_id":"c","action":"x.y"}'
    assert search_row(1, reordered, 2, None) == (1, 2, "c", "a", None, "x.y")


_QUERIES = (  # a correlation id: test_a_correlation_id_is_one_probe_per_block...
    SearchQuery(client="order-sync", since=T0),
    SearchQuery(integration="billing", since=T0, until=T0 + timedelta(hours=1)),
    SearchQuery(action="gateway.request"),
    SearchQuery(since=T0),
    SearchQuery(),
)


def _plan(connection: sa.Connection, query: SearchQuery, size: int = 4 * CORRELATION_BLOCK) -> str:
    sqlite = connection.dialect.name == "sqlite"
    statement = _statement(query, size, postgresql=not sqlite)
    sql = str(statement.compile(connection.engine, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    return " / ".join(str(row[-1]) for row in connection.exec_driver_sql(prefix + sql))


def _no_scans(connection: sa.Connection, *, sort: bool) -> None:
    if connection.dialect.name == "postgresql":
        # A tiny table would be scanned or sorted whatever its indexes: rule those out
        # and see whether an index gives the rows (in order, unless ``sort``).
        for setting in (
            "enable_seqscan",
            "enable_bitmapscan",
            "enable_sort"[: 0 if sort else None],
        ):
            if setting:
                connection.exec_driver_sql(f"SET {setting} = off")


def test_every_search_is_an_index_range_scan_in_print_order(audit_log: AuditLog) -> None:
    """The plan reads one audit_search index in order (no scan of the table, no sort)."""
    _fill(audit_log)
    with audit_log.store.engine.connect() as connection:
        _no_scans(connection, sort=False)
        for query in _QUERIES:
            plan = _plan(connection, query)
            assert "audit_search_" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
            assert "Sort" not in plan, plan
            assert "Seq Scan on audit_search" not in plan, plan


def test_a_correlation_id_is_one_probe_per_block_then_a_sort_of_its_few_rows(
    audit_log: AuditLog,
) -> None:
    """Both key parts of the block-keyed index are probed: never a pass over the index."""
    _fill(audit_log)
    with audit_log.store.engine.connect() as connection:
        _no_scans(connection, sort=True)
        plan = _plan(connection, SearchQuery(correlation_id="req-1"))
    if audit_log.store.engine.dialect.name == "sqlite":
        expected = "USING INDEX audit_search_correlation_block (<expr>=? AND correlation_id=?)"
        assert expected in plan, plan
    else:
        assert "Index Scan using audit_search_correlation_block" in plan, plan
        assert "Index Cond: (((idx / 4096) = ANY ('{0,1,2,3}'::integer[])) AND " in plan, plan
    assert "Seq Scan" not in plan, plan


def test_a_correlation_id_is_found_in_every_block_newest_first(
    settings: Settings, keyring: Keyring
) -> None:
    """An id shared across several blocks of the index: every entry, by time, newest first."""
    log = AuditLog.open(settings, keyring, witnesses=[])
    try:
        block = CORRELATION_BLOCK
        with log.store.appending(log.keys) as batch:
            count = 2 * block + 10
            bodies = [
                encode_entry(
                    sample_entry(i, correlation_id="many" if i % block in {0, 5} else f"r{i}"),
                    log.keys.pseudonymiser,
                    pseudonymise_ip=True,
                )
                for i in range(count)
            ]
            # Times out of index order: the newest by time is entry 5.
            times = [(count + 100 if i == 5 else i) for i in range(count)]
            batch.extend(bodies, times, ["order-sync"] * count)
        indexes = _indexes(log, correlation_id="many")
        assert indexes == [5, 2 * block + 5, 2 * block, block + 5, block, 0]
        assert _indexes(log, correlation_id=f"r{block + 7}") == [block + 7]
    finally:
        log.close()


def test_postgres_roles_search_as_the_app_and_prune_the_index_as_maintenance(
    postgres_url: str, request: pytest.FixtureRequest, keyring: Keyring, tmp_path: Path
) -> None:
    """The app role appends index rows but cannot change them; the maintenance role prunes them."""
    app_role, maintenance_role = request.getfixturevalue("roles")
    owner = AuditLog.open(
        Settings(data_dir=tmp_path, audit_database_url=postgres_url), keyring, witnesses=[]
    )
    _fill(owner)
    grant_roles(owner.store.engine, app_role, maintenance_role)
    owner.close()

    app = AuditLog.open(
        Settings(data_dir=tmp_path, audit_database_url=_as(postgres_url, app_role)),
        keyring,
        witnesses=[],
    )
    try:
        app.sink.record(sample_entry(30, correlation_id="by-app"))
        assert _indexes(app, correlation_id="by-app") == [12]
        for statement in (sa.delete(SEARCH), sa.update(SEARCH).values(client="x")):
            with (
                pytest.raises(DBAPIError, match="permission denied"),
                app.store.engine.begin() as c,
            ):
                c.execute(statement)
    finally:
        app.close()
    maintenance = AuditLog.open(
        Settings(data_dir=tmp_path, audit_database_url=_as(postgres_url, maintenance_role)),
        keyring,
        witnesses=[],
    )
    try:
        with (
            pytest.raises(DBAPIError, match="only once pruned"),
            maintenance.store.engine.begin() as c,
        ):
            c.execute(sa.delete(SEARCH).where(SEARCH.c.idx == 0))
        prune(
            maintenance.store,
            maintenance.keys,
            {"order-sync": timedelta(days=1)},
            now=T0 + timedelta(days=1, minutes=3),
        )
        assert _indexes(maintenance, client="order-sync")[-3:] == [5, 4, 3]
    finally:
        maintenance.close()


_OLD_LAYOUT = (  # the first layout's correlation-id index, as issue 29 created it
    "DROP INDEX audit_search_correlation_block",
    "CREATE INDEX audit_search_correlation_id ON audit_search (correlation_id, time_us, idx)",
)


def _search_indexes(engine: sa.Engine) -> set[str]:
    if engine.dialect.name == "postgresql":
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
    with engine.connect() as connection:
        names = set(connection.exec_driver_sql(sql).scalars())
    return {n for n in names if n.startswith("audit_search_") and not n.endswith("_pkey")}


def _make_old_layout(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for statement in _OLD_LAYOUT:
            connection.exec_driver_sql(statement)
    engine.dispose()


_CURRENT = {
    "audit_search_time",
    "audit_search_correlation_block",
    "audit_search_client",
    "audit_search_integration",
    "audit_search_action",
}


def test_a_log_with_the_first_index_layout_gets_the_new_one_on_open(
    settings: Settings, keyring: Keyring
) -> None:
    """Opening by a role with DDL rights swaps the old correlation index; searches agree."""
    log = AuditLog.open(settings, keyring, witnesses=[])
    _fill(log)
    log.close()
    _make_old_layout(settings.audit_url)
    engine = sa.create_engine(settings.audit_url)
    assert "audit_search_correlation_id" in _search_indexes(engine)

    log = AuditLog.open(settings, keyring, witnesses=[])
    try:
        assert _search_indexes(engine) == _CURRENT
        assert _indexes(log, correlation_id="shared") == [8, 7, 6]
        ensure_schema(log.store.engine)  # idempotent: nothing left to change
        assert _search_indexes(engine) == _CURRENT
    finally:
        log.close()
        engine.dispose()


def test_postgres_app_role_leaves_the_old_layout_and_still_finds_ids(
    postgres_url: str, request: pytest.FixtureRequest, keyring: Keyring, tmp_path: Path
) -> None:
    """Without DDL rights the old index stays (a warning, no failure); search answers alike."""
    app_role, _ = request.getfixturevalue("roles")
    owner = AuditLog.open(
        Settings(data_dir=tmp_path, audit_database_url=postgres_url), keyring, witnesses=[]
    )
    _fill(owner)
    grant_roles(owner.store.engine, app_role)
    owner.close()
    _make_old_layout(postgres_url)

    app = AuditLog.open(
        Settings(data_dir=tmp_path, audit_database_url=_as(postgres_url, app_role)),
        keyring,
        witnesses=[],
    )
    try:
        assert "audit_search_correlation_id" in _search_indexes(app.store.engine)
        assert _indexes(app, correlation_id="shared") == [8, 7, 6]
        app.sink.record(sample_entry(40, correlation_id="shared"))
        assert _indexes(app, correlation_id="shared") == [12, 8, 7, 6]
    finally:
        app.close()


def test_the_fields_handed_to_the_writer_are_those_its_bytes_hold(audit_log: AuditLog) -> None:
    """record, record_later and the gateway's decision path: each row equals the bytes' row."""
    sink = audit_log.sink
    sink.record(sample_entry(0, actor="client:", correlation_id=None))
    sink.record_later(sample_entry(1, actor="admin:alice", action="admin.keys.create"))
    decision = Decision(
        time_us=1_735_689_600_000_000,
        actor="client:order-sync",
        action="gateway.request",
        integration="order-sync",
        source=None,
        target=None,
        data_categories=(),
        records=0,
        bytes=0,
        result="success",
        status=200,
        correlation_id="req-decision",
        reason=None,
        details={},
        client_ip="192.0.2.1",
    )
    assert sink.record_decision_later(decision)
    audit_log.writer.close()
    query = sa.select(SEARCH, BODIES.c.body).join(BODIES, BODIES.c.idx == SEARCH.c.idx)
    with audit_log.store.engine.connect() as connection:
        rows = connection.execute(query.order_by(SEARCH.c.idx)).all()
    assert [row.client for row in rows] == [None, None, "order-sync"]
    for row in rows:
        stored = (row.idx, row.time_us, row.correlation_id, row.client, row.integration, row.action)
        assert stored == search_row(row.idx, bytes(row.body), row.time_us, row.integration)


def _plant(path: str, index: int) -> None:
    """An insider's self-consistent entry at ``index`` (leaf, body, search row; INSERT only),
    with CHECK constraints ignored as a log made before them would."""
    with sqlite3.connect(path) as connection:
        (body,) = connection.execute("SELECT body FROM audit_bodies WHERE idx = 3").fetchone()
        fake = body.replace(b'"req-3"', b'"FORGED-1"')
        connection.execute("PRAGMA ignore_check_constraints=ON")
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%nonnegative'"
        ).fetchall():
            connection.execute(f"DROP TRIGGER {name}")
        connection.execute(
            "INSERT INTO audit_leaves SELECT ?, ?, time_us, integration FROM audit_leaves "
            "WHERE idx = 3",
            (index, leaf_hash(fake)),
        )
        connection.execute("INSERT INTO audit_bodies VALUES (?, ?)", (index, fake))
        connection.execute(
            "INSERT INTO audit_search SELECT ?, time_us, 'FORGED-1', client, integration, action "
            "FROM audit_search WHERE idx = 3",
            (index,),
        )


@pytest.mark.parametrize("index", [-1, 12])
def test_search_finds_only_entries_of_the_latest_signed_tree(
    sqlite_settings: Settings, keyring: Keyring, index: int
) -> None:
    """Rows planted below 0 or beyond the signed tree (12 entries) are never hits."""
    log = AuditLog.open(sqlite_settings, keyring, witnesses=[])
    _fill(log)
    log.close()
    _plant(sqlite_settings.audit_url.removeprefix("sqlite:///"), index)
    log = AuditLog.open(sqlite_settings, keyring, witnesses=[])
    try:
        result = search(log.store, SearchQuery(correlation_id="FORGED-1"))
        assert (result.hits, result.tree_size) == ((), 12)
        assert _indexes(log, client="order-sync") == [5, 4, 3, 2, 1, 0]
    finally:
        log.close()


_GUARDED = (
    "INSERT INTO audit_leaves VALUES (-1, :hash, 0, NULL)",
    "INSERT INTO audit_nodes VALUES (1, -1, :hash)",
    "INSERT INTO audit_pruned VALUES (0, -1)",
)


def test_no_column_holding_an_index_takes_one_below_zero(audit_log: AuditLog) -> None:
    """CHECK (idx >= 0) on every index column: INSERT alone cannot plant an entry at -1."""
    _fill(audit_log)
    for statement in _GUARDED:
        with pytest.raises(DBAPIError), audit_log.store.engine.begin() as connection:
            connection.execute(sa.text(statement), {"hash": b"\0" * 32})


_GUARDS = {  # name -> table: PostgreSQL's CHECK constraints, SQLite's triggers
    "audit_leaves_idx_nonnegative": "audit_leaves",
    "audit_bodies_idx_nonnegative": "audit_bodies",
    "audit_nodes_idx_nonnegative": "audit_nodes",
    "audit_pruned_idx_nonnegative": "audit_pruned",
    "audit_pruned_prune_idx_nonnegative": "audit_pruned",
    "audit_search_idx_nonnegative": "audit_search",
}


def _remove_guards(url: str) -> None:
    """The audit tables as a release before the CHECK constraints made them."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            for name, table in _GUARDS.items():
                connection.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        else:
            for name in _GUARDS:
                connection.exec_driver_sql(f"DROP TRIGGER {name}")
            for statement in (  # SQLite has no DROP CONSTRAINT: rebuild the nodes' table
                "CREATE TABLE old_nodes (level SMALLINT NOT NULL, idx BIGINT NOT NULL, "
                "hash BLOB NOT NULL, PRIMARY KEY (level, idx))",
                "INSERT INTO old_nodes SELECT * FROM audit_nodes",
                "DROP TABLE audit_nodes",
                "ALTER TABLE old_nodes RENAME TO audit_nodes",
            ):
                connection.exec_driver_sql(statement)
    engine.dispose()


def test_a_log_made_before_the_index_checks_gains_them_on_open(
    settings: Settings, keyring: Keyring
) -> None:
    """Opening an older log (no CHECK) by a role with DDL rights adds the guards; it verifies."""
    log = AuditLog.open(settings, keyring, witnesses=[])
    _fill(log)
    log.close()
    _remove_guards(settings.audit_url)
    log = AuditLog.open(settings, keyring, witnesses=[])
    try:
        for statement in _GUARDED:
            with pytest.raises(DBAPIError), log.store.engine.begin() as connection:
                connection.execute(sa.text(statement), {"hash": b"\0" * 32})
        assert verify_log(log.store.engine).size == 12
    finally:
        log.close()


def test_a_name_no_entry_holds_is_said_with_the_closest_names_the_trail_holds(
    audit_log: AuditLog,
) -> None:
    """Nothing found for a mistyped client, integration or action: a hint each, from the index."""
    _fill(audit_log)
    result = search(
        audit_log.store, SearchQuery(client="ordr-sync", integration="biling", action="gateway.req")
    )
    assert result.hits == ()
    assert result.hints == (
        "no indexed entry names client 'ordr-sync'; did you mean 'order-sync'?",
        "no indexed entry names integration 'biling'; did you mean 'billing'?",
        "no indexed entry names action 'gateway.req'; did you mean 'gateway.request'?",
    )
    # Names that exist but match nothing together get no hint; a hit gets none at all.
    assert (
        search(audit_log.store, SearchQuery(client="billing-sync", integration="order-sync")).hints
        == ()
    )
    assert search(audit_log.store, SearchQuery(client="order-sync")).hints == ()
    # Nothing close: said without a suggestion.
    assert search(audit_log.store, SearchQuery(integration="zzz")).hints == (
        "no indexed entry names integration 'zzz'",
    )
