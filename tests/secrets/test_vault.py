"""The vault: versions, check-and-set, stages, soft delete and destroy, policy, evidence."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from interlock.actors import Client, Operator
from interlock.audit.errors import AuditUnavailableError
from interlock.audit.sink import MemorySink
from interlock.config.settings import Settings
from interlock.errors import DecryptionError, InvalidRequestError, NotFoundError
from interlock.secrets.errors import AccessDeniedError, VersionConflictError
from interlock.secrets.policy import check_pattern, matches
from interlock.secrets.vault import Vault
from interlock.store import Deployment, initialise

ADMIN = Operator("admin:test")


@pytest.fixture
def deployment(tmp_path: Path, store_url: str) -> Iterator[Deployment]:
    """A fresh deployment on each store backend."""
    opened = initialise(Settings(data_dir=tmp_path / "d", database_url=store_url))
    yield opened
    opened.close()


@pytest.fixture
def sink() -> MemorySink:
    """Where the vault's evidence goes."""
    return MemorySink()


@pytest.fixture
def vault(deployment: Deployment, sink: MemorySink) -> Vault:
    """The vault, uncached, recording to ``sink``."""
    return Vault(deployment.engine, deployment.keyring, audit=sink, cache_seconds=0)


def test_versions_count_up_and_the_previous_one_stays_valid_for_the_overlap(vault: Vault) -> None:
    """Each write is a new version; the one before becomes previous with an end to its validity."""
    assert vault.write("erp/api-key", b"first", actor=ADMIN).version == 1
    assert vault.write("erp/api-key", b"second", actor=ADMIN).version == 2
    assert vault.write("erp/api-key", b"third", actor=ADMIN).version == 3
    secret, info = vault.read("erp/api-key", actor=ADMIN)
    assert (secret.reveal(), info.version, info.stage) == (b"third", 3, "current")
    previous, info = vault.read("erp/api-key", actor=ADMIN, stage="previous")
    assert (previous.reveal(), info.version) == (b"second", 2)
    assert info.valid_until is not None
    assert vault.read("erp/api-key", actor=ADMIN, version=1)[0].reveal() == b"first"
    history = vault.versions("erp/api-key", actor=Operator("admin:test"))
    assert [(v.version, v.stage) for v in history] == [(1, None), (2, "previous"), (3, "current")]
    assert vault.info("erp/api-key", actor=Operator("admin:test")).current_version == 3
    assert "third" not in repr(secret) + str(secret)


def test_nothing_is_stored_in_clear_and_values_are_bound_to_name_and_version(
    vault: Vault, deployment: Deployment
) -> None:
    """Copying a sealed value to another version or name fails closed."""
    vault.write("a/one", b"value-one", actor=ADMIN)
    vault.write("a/one", b"value-two", actor=ADMIN)
    with deployment.engine.begin() as connection:
        stored = connection.execute(sa.text("SELECT value FROM vault_versions")).scalars().all()
        assert all(b"value-" not in blob for blob in stored)
        first = connection.execute(
            sa.text("SELECT value FROM vault_versions WHERE version = 1")
        ).scalar()
        connection.execute(
            sa.text("UPDATE vault_versions SET value = :v WHERE version = 2"), {"v": first}
        )
    with pytest.raises(DecryptionError):
        vault.read("a/one", actor=ADMIN)


def test_check_and_set(vault: Vault) -> None:
    """cas=0 creates only; cas=n writes only over version n; a conflict changes nothing."""
    assert vault.write("db/password", b"v1", actor=ADMIN, cas=0).version == 1
    with pytest.raises(VersionConflictError, match="at version 1, not 0"):
        vault.write("db/password", b"again", actor=ADMIN, cas=0)
    assert vault.write("db/password", b"v2", actor=ADMIN, cas=1).version == 2
    with pytest.raises(VersionConflictError):
        vault.write("db/password", b"stale", actor=ADMIN, cas=1)
    assert vault.read("db/password", actor=ADMIN)[0].reveal() == b"v2"
    assert [v.version for v in vault.versions("db/password", actor=Operator("admin:test"))] == [
        1,
        2,
    ]


def test_concurrent_check_and_set_writers_one_wins(vault: Vault) -> None:
    """Eight writers with cas=1 at once: exactly one succeeds, the rest conflict."""
    vault.write("race/key", b"v1", actor=ADMIN)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        try:
            vault.write("race/key", f"w{n}".encode(), actor=ADMIN, cas=1)
            results.append("ok")
        except VersionConflictError:
            results.append("conflict")
        except sa.exc.OperationalError:  # SQLite: "database is locked" is a refusal too
            results.append("conflict")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("ok") == 1
    assert vault.info("race/key", actor=Operator("admin:test")).current_version == 2


def test_pending_versions_are_not_served_until_promoted(vault: Vault) -> None:
    """A rotation stages a pending version; promotion makes it current, the old one previous."""
    vault.write("svc/token", b"old", actor=ADMIN)
    pending = vault.write("svc/token", b"new", actor=ADMIN, stage="pending")
    assert pending.version == 2
    assert vault.read("svc/token", actor=ADMIN)[0].reveal() == b"old"
    assert vault.read("svc/token", actor=ADMIN, stage="pending")[0].reveal() == b"new"
    promoted = vault.promote("svc/token", 2, actor=ADMIN)
    assert promoted.stage == "current"
    assert vault.promote("svc/token", 2, actor=ADMIN).version == 2  # resumable: idempotent
    assert vault.read("svc/token", actor=ADMIN)[0].reveal() == b"new"
    assert vault.read("svc/token", actor=ADMIN, stage="previous")[0].reveal() == b"old"
    assert vault.info("svc/token", actor=Operator("admin:test")).last_rotated_at is not None
    vault.retire("svc/token", 1, actor=ADMIN)
    with pytest.raises(NotFoundError):
        vault.read("svc/token", actor=ADMIN, stage="previous")


def test_a_pending_version_is_not_served_to_clients(vault: Vault) -> None:
    """Untested until its rotation promotes it: neither by stage nor by version number."""
    vault.write("erp/k", b"current-value", actor=ADMIN)
    vault.write("erp/k", b"pending-value", actor=ADMIN, stage="pending")
    vault.policy.grant("order-sync", "erp/*", ["read"])
    client = Client("order-sync")
    with pytest.raises(NotFoundError, match="not served"):
        vault.read("erp/k", actor=client, stage="pending")
    with pytest.raises(NotFoundError, match="not served"):
        vault.read("erp/k", actor=client, version=2)
    assert vault.read("erp/k", actor=client)[0].reveal() == b"current-value"
    assert vault.read("erp/k", actor=ADMIN, version=2)[0].reveal() == b"pending-value"
    vault.promote("erp/k", 2, actor=ADMIN)
    assert vault.read("erp/k", actor=client, version=2)[0].reveal() == b"pending-value"


def test_soft_delete_undelete_and_destroy(vault: Vault, deployment: Deployment) -> None:
    """Deleted versions come back; destroyed ones are erased for good, their record kept."""
    vault.write("x/y", b"one", actor=ADMIN)
    vault.write("x/y", b"two", actor=ADMIN)
    vault.delete("x/y", [1], actor=ADMIN)
    with pytest.raises(NotFoundError, match="deleted"):
        vault.read("x/y", actor=ADMIN, version=1)
    vault.undelete("x/y", [1], actor=ADMIN)
    assert vault.read("x/y", actor=ADMIN, version=1)[0].reveal() == b"one"
    vault.destroy("x/y", [1], actor=ADMIN)
    with pytest.raises(InvalidRequestError, match="destroyed"):
        vault.undelete("x/y", [1], actor=ADMIN)  # a destroyed version does not come back
    with pytest.raises(NotFoundError, match="destroyed"):
        vault.read("x/y", actor=ADMIN, version=1)
    with deployment.engine.connect() as connection:
        assert (
            connection.execute(
                sa.text("SELECT value FROM vault_versions WHERE version = 1")
            ).scalar()
            is None
        )
    assert [
        v.destroyed_at is not None for v in vault.versions("x/y", actor=Operator("admin:test"))
    ] == [True, False]
    with pytest.raises(NotFoundError, match="no version 9"):
        vault.delete("x/y", [9], actor=ADMIN)


def test_undelete_restores_and_records_only_what_it_changed(vault: Vault, sink: MemorySink) -> None:
    """A destroyed version is refused (nothing changes); one not deleted is no restore."""
    for value in (b"one", b"two", b"three"):
        vault.write("x/y", value, actor=ADMIN)
    vault.destroy("x/y", [1], actor=ADMIN)
    vault.delete("x/y", [2], actor=ADMIN)
    before = len(sink.entries)
    with pytest.raises(InvalidRequestError, match=r"version 1 of x/y was destroyed"):
        vault.undelete("x/y", [1, 2], actor=ADMIN)
    assert sink.entries[before:] == []
    with pytest.raises(NotFoundError, match="deleted"):
        vault.read("x/y", actor=ADMIN, version=2)  # all or nothing: 2 stays deleted
    assert vault.undelete("x/y", [2, 3], actor=ADMIN) == [2]
    assert [(e.action, e.details.get("version")) for e in sink.entries[before:]] == [
        ("secret.undelete", 2)
    ]
    assert vault.read("x/y", actor=ADMIN, version=2)[0].reveal() == b"two"


def test_access_policy_is_default_deny_and_path_scoped(vault: Vault, sink: MemorySink) -> None:
    """Grants of globs per client and capability; anything else is refused and recorded."""
    vault.write("erp/api-key", b"k", actor=ADMIN)
    vault.write("erp/deep/thing", b"d", actor=ADMIN)
    vault.write("crm/token", b"c", actor=ADMIN)
    with pytest.raises(AccessDeniedError):
        vault.read("erp/api-key", actor=Client("order-sync"))
    assert sink.entries[-1].action == "secret.denied"
    vault.policy.grant("order-sync", "erp/*", ["read"])
    assert vault.read("erp/api-key", actor=Client("order-sync"))[0].reveal() == b"k"
    with pytest.raises(AccessDeniedError):  # * stays within one segment
        vault.read("erp/deep/thing", actor=Client("order-sync"))
    with pytest.raises(AccessDeniedError):  # read does not give write
        vault.write("erp/api-key", b"x", actor=Client("order-sync"))
    with pytest.raises(AccessDeniedError):  # nor list
        vault.info("erp/api-key", actor=Client("order-sync"))
    assert vault.secrets(actor=Client("order-sync")) == []
    vault.policy.grant("order-sync", "erp/**", ["list", "read", "write"])
    assert [i.name for i in vault.secrets(actor=Client("order-sync"))] == [
        "erp/api-key",
        "erp/deep/thing",
    ]
    assert vault.write("erp/deep/thing", b"d2", actor=Client("order-sync")).version == 2
    with pytest.raises(AccessDeniedError):
        vault.read("crm/token", actor=Client("order-sync"))
    with pytest.raises(AccessDeniedError):  # another client has nothing
        vault.read("erp/api-key", actor=Client("other"))
    vault.policy.revoke("order-sync", "erp/**")
    with pytest.raises(AccessDeniedError):
        vault.read("erp/deep/thing", actor=Client("order-sync"))


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("erp/*", "erp/api-key", True),
        ("erp/*", "erp/a/b", False),
        ("erp/*", "erp", False),
        ("erp/**", "erp", True),
        ("erp/**", "erp/a/b", True),
        ("**/password", "db/main/password", True),
        ("erp/api-*", "erp/api-key", True),
        ("erp/api-*", "erp/apikey", False),
        ("erp", "erp/x", False),
        ("erp-*/*", "erp-eu/key", True),
    ],
)
def test_patterns(pattern: str, name: str, expected: bool) -> None:
    """Segment-wise globbing."""
    assert matches(check_pattern(pattern), name) is expected


@pytest.mark.parametrize(
    "pattern", ["", "/erp", "erp//x", "ERP/*", "erp/[a]", "erp/?", "erp/*\n", "erp/\n/x"]
)
def test_bad_patterns_are_refused(pattern: str) -> None:
    """Only lower-case segments with * and **."""
    with pytest.raises(InvalidRequestError):
        check_pattern(pattern)


def test_every_read_and_change_is_on_the_audit_trail_without_the_value(
    vault: Vault, sink: MemorySink
) -> None:
    """Reads, writes, promotions, deletions: one entry each; the value never appears."""
    vault.write("erp/api-key", b"SENSITIVE-VALUE-1", actor=ADMIN)
    vault.write("erp/api-key", b"SENSITIVE-VALUE-2", actor=ADMIN, stage="pending")
    vault.read("erp/api-key", actor=Operator("system:gateway"))
    vault.promote("erp/api-key", 2, actor=ADMIN)
    vault.delete("erp/api-key", [1], actor=ADMIN)
    vault.destroy("erp/api-key", [1], actor=ADMIN)
    actions = [(e.actor, e.action, e.details.get("version")) for e in sink.entries]
    assert actions == [
        (ADMIN.label, "secret.write", 1),
        (ADMIN.label, "secret.write", 2),
        ("system:gateway", "secret.read", 1),
        (ADMIN.label, "secret.promote", 2),
        (ADMIN.label, "secret.delete", 1),
        (ADMIN.label, "secret.destroy", 1),
    ]
    assert all(e.details["secret"] == "erp/api-key" for e in sink.entries)
    assert not any(b"SENSITIVE" in blob for blob in sink.encoded)


def test_a_read_the_audit_trail_cannot_record_releases_nothing(
    vault: Vault, sink: MemorySink
) -> None:
    """Fail closed: no evidence, no value."""
    vault.write("erp/api-key", b"k", actor=ADMIN)
    sink.unavailable = True
    with pytest.raises(AuditUnavailableError):
        vault.read("erp/api-key", actor=ADMIN)
    with pytest.raises(AuditUnavailableError):
        vault.resolve("secret://erp/api-key")


def test_resolve_caches_and_picks_up_a_new_version(deployment: Deployment) -> None:
    """The gateway's resolver: cached briefly, a rotated value seen after the cache."""
    sink = MemorySink()
    vault = Vault(deployment.engine, deployment.keyring, audit=sink, cache_seconds=60)
    vault.write("erp/api-key", b"one", actor=ADMIN)
    assert vault.cached("secret://erp/api-key") is None
    assert vault.resolve("secret://erp/api-key").reveal() == b"one"
    assert vault.resolve("secret://erp/api-key").reveal() == b"one"
    reads = [e for e in sink.entries if e.action == "secret.read"]
    assert len(reads) == 1  # the second came from the cache
    cached = vault.cached("secret://erp/api-key")
    assert cached is not None
    assert cached.reveal() == b"one"
    other = Vault(
        deployment.engine, deployment.keyring, cache_seconds=0, audit=MemorySink()
    )  # another replica
    other.write("erp/api-key", b"two", actor=ADMIN)
    assert vault.resolve("secret://erp/api-key").reveal() == b"one"  # within its cache
    fresh = Vault(deployment.engine, deployment.keyring, cache_seconds=0, audit=MemorySink())
    assert fresh.resolve("secret://erp/api-key").reveal() == b"two"


def test_metadata_and_rotation_defaults_by_kind(vault: Vault) -> None:
    """A new secret takes its kind's rotation policy; configure changes it."""
    vault.write("db/app", b"pw", actor=ADMIN, kind="database_password")
    info = vault.info("db/app", actor=Operator("admin:test"))
    assert (info.kind, info.rotate_every, info.max_age) == (
        "database_password",
        30 * 86_400,
        90 * 86_400,
    )
    assert info.due_at() is not None
    info = vault.configure(
        "db/app",
        actor=ADMIN,
        owner="team-data",
        rotate_every=7 * 86_400,
        overlap=600,
        rotator="postgresql",
        rotator_config={"role": "app"},
    )
    assert (info.owner, info.rotate_every, info.overlap, info.rotator) == (
        "team-data",
        7 * 86_400,
        600,
        "postgresql",
    )
    assert info.rotator_config == {"role": "app"}
    with pytest.raises(NotFoundError):
        vault.configure("db/none", actor=ADMIN, owner="x")
    with pytest.raises(InvalidRequestError):
        vault.configure("db/app", actor=ADMIN, kind="nonsense")


@pytest.mark.parametrize(
    "reference",
    # A trailing line break passed the name's ``$`` (which matches before a final "\n").
    ["erp/api-key", "secret://../x", "secret://UPPER", "secret://", "secret://erp/api-key\n"],
)
def test_bad_references_are_refused(vault: Vault, reference: str) -> None:
    """Only secret://lower/case/paths."""
    with pytest.raises(InvalidRequestError):
        vault.resolve(reference)


def test_missing_secret_names_the_fix(vault: Vault) -> None:
    """An unknown secret says how to store it."""
    with pytest.raises(NotFoundError, match="secrets put"):
        vault.resolve("secret://nope")


def test_a_name_with_a_line_break_is_no_second_secret(vault: Vault) -> None:
    """``erp/api-key\n`` is refused, not stored as a twin that lists like ``erp/api-key``.

    A client allowed to write ``erp/*`` could otherwise plant a look-alike of a
    secret it may not change, and a client name with a line break was granted.
    """
    vault.write("erp/api-key", b"real", actor=ADMIN)
    with pytest.raises(InvalidRequestError):
        vault.write("erp/api-key\n", b"look-alike", actor=ADMIN)
    with pytest.raises(InvalidRequestError):
        vault.read("erp/api-key\n", actor=ADMIN)
    with pytest.raises(InvalidRequestError):
        vault.policy.grant("order-sync\n", "erp/*", ["read"])
    assert [info.name for info in vault.secrets(actor=ADMIN)] == ["erp/api-key"]


def test_bad_values_are_refused(vault: Vault) -> None:
    """Empty and oversized values, unknown kinds."""
    with pytest.raises(InvalidRequestError):
        vault.write("a/b", b"", actor=ADMIN)
    with pytest.raises(InvalidRequestError):
        vault.write("a/b", b"x" * (64 * 1024 + 1), actor=ADMIN)
    with pytest.raises(InvalidRequestError):
        vault.write("a/b", b"x", actor=ADMIN, kind="weird")
    with pytest.raises(NotFoundError):
        vault.write("a/new", b"x", actor=ADMIN, stage="pending")
