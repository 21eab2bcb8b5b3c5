"""The audit database's tables, its append-only triggers, and the PostgreSQL grants.

The audit log lives in its own database (default: its own SQLite file). Its
schema is created on open when absent, idempotently, rather than by the main
store's Alembic migrations: it is a separate database with its own life cycle,
and a restricted application role must be able to open it without any DDL
right. Every table is insert-only:

* ``audit_leaves`` (index, leaf hash, time, integration), ``audit_nodes``
  (completed perfect subtrees), ``audit_checkpoints`` (signed tree heads),
  ``audit_keys`` (sealed keys), ``audit_cosignatures`` (witnesses' verified
  cosignatures of tree heads), ``audit_pruned`` and ``audit_search_backfill``
  are never updated or deleted;
* ``audit_bodies`` (the canonical entries) and ``audit_search`` (the search
  index: a few of each entry's fields, :mod:`interlock.audit.search_index`)
  are never updated; a row may be deleted only once its index is in
  ``audit_pruned`` — the single, narrow exception that retention pruning
  (:mod:`interlock.audit.prune`) uses: an entry's index row goes with its body.

Triggers enforce this for every connection (SQLite and PostgreSQL); on
PostgreSQL :func:`grant_roles` also gives the application role only INSERT and
SELECT, and a maintenance role DELETE on ``audit_bodies`` and ``audit_search`` besides.

No column holding an entry's index takes a value below 0: CHECK constraints
``<table>_<column>_nonnegative`` (:data:`INDEXED`), which a log made before them
gains when a role with DDL rights opens it (on SQLite, as triggers of the same names).
"""

from __future__ import annotations

import re
import time
from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.schema import CreateIndex

from interlock.logs import get_logger

__all__ = [
    "BODIES",
    "CHECKPOINTS",
    "CORRELATION_BLOCK",
    "COSIGNATURES",
    "INDEXED",
    "KEYS",
    "LEAVES",
    "METADATA",
    "NODES",
    "PRUNABLE",
    "PRUNED",
    "SEARCH",
    "SEARCH_BACKFILL",
    "ensure_schema",
    "grant_roles",
    "missing_tables",
]

METADATA: Final = MetaData()


def _nonnegative(table: str, *columns: str) -> tuple[CheckConstraint, ...]:
    # An index below 0 is no entry of the log; verify reads the leaves from 0 up, so
    # a row there would never be compared with anything (an insider with INSERT only
    # could plant one for `audit search` to show).
    return tuple(CheckConstraint(f"{c} >= 0", name=f"{table}_{c}_nonnegative") for c in columns)


LEAVES: Final = Table(
    "audit_leaves",
    METADATA,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("time_us", BigInteger, nullable=False),  # entry time, µs since the epoch (UTC)
    Column("integration", String(200), nullable=True),
    *_nonnegative("audit_leaves", "idx"),
)
BODIES: Final = Table(
    "audit_bodies",
    METADATA,
    Column("idx", BigInteger, ForeignKey("audit_leaves.idx"), primary_key=True),
    Column("body", LargeBinary, nullable=False),
    *_nonnegative("audit_bodies", "idx"),
)
NODES: Final = Table(
    "audit_nodes",
    METADATA,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    *_nonnegative("audit_nodes", "idx"),
)
CHECKPOINTS: Final = Table(
    "audit_checkpoints",
    METADATA,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)
COSIGNATURES: Final = Table(
    "audit_cosignatures",
    METADATA,
    Column("size", BigInteger, ForeignKey("audit_checkpoints.size"), primary_key=True),
    Column("witness", String(200), primary_key=True),  # the cosigner's key name
    Column("key_id", LargeBinary(4), nullable=False),
    Column("timestamp", BigInteger, nullable=False),  # the witness's, seconds since the epoch
    Column("line", Text, nullable=False),  # the note signature line, verifiable offline
)
PRUNED: Final = Table(
    "audit_pruned",
    METADATA,
    Column("idx", BigInteger, ForeignKey("audit_leaves.idx"), primary_key=True),
    Column("prune_idx", BigInteger, nullable=False),  # the log entry that records the prune
    *_nonnegative("audit_pruned", "idx", "prune_idx"),
)
KEYS: Final = Table(
    "audit_keys",
    METADATA,
    Column("purpose", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("public_key", LargeBinary, nullable=True),
    Column("sealed", LargeBinary, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)
#: Entries per block of the correlation-id index (``audit_search_correlation_block``).
CORRELATION_BLOCK: Final = 4096
# The search index: one row per entry that has a body, written in the append's
# transaction (and backfilled for a log made before it). Client, integration and
# action are indexed with the time (and the index, the tie-break), so such a
# search is a range scan of one index in the order it prints, newest first,
# stopping at its limit; each index's new rows go at the end of its value's
# range, a few pages per batch. Correlation ids are random and nearly unique: an
# index on the id alone would put each new row on its own page, and write a page
# per entry at every commit (measured: 5 µs an entry, more than the rest of the
# row). Its key starts with the entry's block (index // CORRELATION_BLOCK), so a
# batch's rows share the pages of the newest block; a search looks the id up in
# each block (one probe per block, :mod:`interlock.audit.search`).
# The client's address is never indexed, not even as its pseudonym.
SEARCH: Final = Table(
    "audit_search",
    METADATA,
    # SQLite: INTEGER PRIMARY KEY makes the index the rowid, one B-tree fewer to write.
    Column(
        "idx",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("audit_leaves.idx"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("time_us", BigInteger, nullable=False),
    Column("correlation_id", String(200), nullable=True),
    Column("client", String(200), nullable=True),  # NAME of an actor ``client:NAME``
    Column("integration", String(200), nullable=True),
    Column("action", String(100), nullable=False),
    Index("audit_search_time", "time_us", "idx"),
    Index(
        "audit_search_correlation_block",
        text(f"(idx / {CORRELATION_BLOCK})"),
        "correlation_id",
    ),
    Index("audit_search_client", "client", "time_us", "idx"),
    Index("audit_search_integration", "integration", "time_us", "idx"),
    Index("audit_search_action", "action", "time_us", "idx"),
    *_nonnegative("audit_search", "idx"),
)
# Backfill progress: every body with an index below ``upto`` has its search row;
# ``target`` is the log's size when the index was created (entries from there on
# are indexed as they are appended). Insert-only, so a backfill resumes at max(upto).
SEARCH_BACKFILL: Final = Table(
    "audit_search_backfill",
    METADATA,
    Column("upto", BigInteger, primary_key=True, autoincrement=False),
    Column("target", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)
#: The columns that hold an entry's index: each has a CHECK (``<table>_<column>_nonnegative``).
INDEXED: Final = (
    LEAVES.c.idx,
    BODIES.c.idx,
    NODES.c.idx,
    PRUNED.c.idx,
    PRUNED.c.prune_idx,
    SEARCH.c.idx,
)
_GUARDS: Final = frozenset(f"{c.table.name}_{c.name}_nonnegative" for c in INDEXED)
#: The tables whose rows retention pruning deletes (only rows recorded in ``audit_pruned``).
PRUNABLE: Final = ("audit_bodies", "audit_search")

_FROZEN: Final = (
    "audit_leaves",
    "audit_nodes",
    "audit_checkpoints",
    "audit_cosignatures",
    "audit_pruned",
    "audit_keys",
    "audit_search_backfill",
)
_log = get_logger("interlock.audit")
_ROLE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_SQLITE_TRIGGERS: Final = [
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        for table in _FROZEN
        for op in ("UPDATE", "DELETE")
    ),
    *(
        statement
        for table in PRUNABLE
        for statement in (
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
            f"CREATE TRIGGER IF NOT EXISTS {table}_delete_only_pruned BEFORE DELETE ON {table} "  # noqa: S608
            "WHEN NOT EXISTS (SELECT 1 FROM audit_pruned WHERE audit_pruned.idx = OLD.idx) "
            "BEGIN SELECT RAISE(ABORT, 'an audit body may be deleted only once pruned'); END",
        )
    ),
    # The CHECK constraints as triggers: SQLite cannot add a constraint to a table, so
    # a log made before them gets these (a new one has both).
    *(
        f"CREATE TRIGGER IF NOT EXISTS {c.table.name}_{c.name}_nonnegative BEFORE INSERT "
        f"ON {c.table.name} WHEN NEW.{c.name} < 0 "
        f"BEGIN SELECT RAISE(ABORT, '{c.table.name}.{c.name} is never below 0'); END"
        for c in INDEXED
    ),
]

_POSTGRES_FUNCTIONS: Final = [
    """CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE OR REPLACE FUNCTION audit_body_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM audit_pruned WHERE audit_pruned.idx = OLD.idx) THEN
        RAISE EXCEPTION 'an audit body may be deleted only once pruned'
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      RETURN OLD;
    END $$""",
]


def _postgres_triggers() -> list[str]:
    statements: list[str] = []
    for table in (*_FROZEN, *PRUNABLE):
        row_ops = "UPDATE" if table in PRUNABLE else "UPDATE OR DELETE"
        statements += [
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE {row_ops} ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
        ]
    statements += [
        f"CREATE OR REPLACE TRIGGER {table}_delete_only_pruned BEFORE DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_body_delete()"
        for table in PRUNABLE
    ]
    return statements


def missing_tables(engine: Engine) -> list[str]:
    """The audit tables ``engine``'s database lacks (none: the schema is present); no DDL."""
    return sorted(set(METADATA.tables) - set(inspect(engine).get_table_names()))


def ensure_schema(engine: Engine) -> None:
    """Create the tables and triggers when any is missing (idempotent).

    Opening an existing log issues no DDL at all, so a role that may only
    INSERT and SELECT can open it. A log made by an older release gains the
    tables it lacks (``audit_cosignatures``) the first time a role with DDL
    rights opens it.

    Creating the search index also records, in the same transaction, the log's
    size then (``audit_search_backfill``): the entries below it are indexed
    by :func:`interlock.audit.search_index.backfill`, those from it on as
    they are appended.
    """
    if set(inspect(engine).get_table_names()) >= set(METADATA.tables):
        _upgrade_search_indexes(engine)
        _upgrade_index_guards(engine)
        return
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Two processes creating the schema at once: the second waits, then finds it.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext('interlock-audit-ddl'))")
            )
        fresh = not inspect(connection).has_table(SEARCH.name)
        METADATA.create_all(connection, checkfirst=True)
        _create_triggers(connection)
        if fresh:
            _record_backfill_target(connection)
    _upgrade_index_guards(engine)  # tables of an older release kept theirs


#: The correlation-id index of the first layout: (correlation_id, time_us, idx).
_OLD_CORRELATION_INDEX: Final = "audit_search_correlation_id"


def _upgrade_search_indexes(engine: Engine) -> None:
    """Swap the first layout's correlation-id index for the block-keyed one, if allowed.

    A read of the index names when the log has the current layout. A role
    without DDL rights (PostgreSQL's application role) leaves the old index in
    place: searches give the same answers through it, only appends cost more
    until a role that owns the tables opens the log.
    """
    names = _index_names(engine)
    current = {index.name for index in SEARCH.indexes}
    if current <= names and _OLD_CORRELATION_INDEX not in names:
        return
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext('interlock-audit-ddl'))")
                )
            for index in SEARCH.indexes:
                connection.execute(CreateIndex(index, if_not_exists=True))
            connection.exec_driver_sql(f"DROP INDEX IF EXISTS {_OLD_CORRELATION_INDEX}")
    except ProgrammingError as exc:  # PostgreSQL: not the tables' owner
        _log.warning("audit_search_index_not_upgraded", error=type(exc.orig).__name__)


def _upgrade_index_guards(engine: Engine) -> None:
    """Give a log made before the ``*_nonnegative`` CHECK constraints its guards, if allowed.

    PostgreSQL: the constraints, ``NOT VALID`` (new rows are checked at once, without a
    scan of the existing ones under an exclusive lock: those are ``audit verify``'s to
    check). SQLite: the equivalent triggers. A read of the catalogue when they are in
    place; a role without DDL rights leaves the log as it is, with a warning.
    """
    with engine.connect() as connection:
        if _guard_names(connection) >= _GUARDS:
            return
    try:
        with engine.begin() as connection:
            if engine.dialect.name != "postgresql":
                _create_triggers(connection)
                return
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext('interlock-audit-ddl'))")
            )
            present = _guard_names(connection)  # another process may have added them
            for column in INDEXED:
                name = f"{column.table.name}_{column.name}_nonnegative"
                if name not in present:
                    connection.exec_driver_sql(
                        f"ALTER TABLE {column.table.name} ADD CONSTRAINT {name} "
                        f"CHECK ({column.name} >= 0) NOT VALID"
                    )
    except ProgrammingError as exc:  # PostgreSQL: not the tables' owner
        _log.warning("audit_index_guards_not_added", error=type(exc.orig).__name__)


def _guard_names(connection: Connection) -> set[str]:
    """The names of the schema's CHECK constraints (PostgreSQL) or triggers (SQLite)."""
    if connection.dialect.name == "postgresql":
        query = text(
            "SELECT conname FROM pg_constraint "
            "WHERE connamespace = current_schema()::regnamespace AND contype = 'c'"
        )
    else:
        query = text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    return set(connection.execute(query).scalars())


def _index_names(engine: Engine) -> set[str]:
    """The names of ``audit_search``'s indexes (the inspector skips expression ones)."""
    if engine.dialect.name == "postgresql":
        query = text(
            "SELECT indexname FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename = :table"
        )
    else:
        query = text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :table")
    with engine.connect() as connection:
        return set(connection.execute(query, {"table": SEARCH.name}).scalars())


def _record_backfill_target(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # No append may commit between reading the size and creating the index.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('interlock-audit-append'))"))
    last = connection.execute(select(func.max(LEAVES.c.idx))).scalar()
    target = 0 if last is None else int(last) + 1
    connection.execute(
        SEARCH_BACKFILL.insert().values(upto=0, target=target, created_us=time.time_ns() // 1000)
    )


def _create_triggers(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        statements = [*_POSTGRES_FUNCTIONS, *_postgres_triggers()]
    else:
        statements = list(_SQLITE_TRIGGERS)
    for statement in statements:
        connection.execute(text(statement))


def grant_roles(engine: Engine, app_role: str, maintenance_role: str | None = None) -> None:
    """PostgreSQL: ``app_role`` may only INSERT and SELECT; ``maintenance_role`` may prune.

    The maintenance role gets DELETE on ``audit_bodies`` and ``audit_search``
    only (and the triggers still refuse a row that is not recorded as pruned). Roles must
    exist; names are plain lower-case identifiers.
    """
    if engine.dialect.name != "postgresql":
        raise ValueError("roles and grants exist on PostgreSQL only")
    roles = [r for r in (app_role, maintenance_role) if r is not None]
    for role in roles:
        if not _ROLE.match(role):
            raise ValueError("a role name is a plain lower-case identifier")
    tables = ", ".join(METADATA.tables)
    prunable = ", ".join(PRUNABLE)
    with engine.begin() as connection:
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
        quoted = engine.dialect.identifier_preparer.quote(schema)
        for role in roles:
            connection.exec_driver_sql(f"REVOKE ALL ON {tables} FROM {role}")
            connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA {quoted} TO {role}")
            connection.exec_driver_sql(f"GRANT SELECT, INSERT ON {tables} TO {role}")
        if maintenance_role is not None:
            connection.exec_driver_sql(f"GRANT DELETE ON {prunable} TO {maintenance_role}")
