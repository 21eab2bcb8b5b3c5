"""Revoked token ids live as long as their token would have, on the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from interlock.oauth.lifetimes import MAX_LEEWAY
from interlock.oauth.revoked import RevokedTokens
from interlock.store import Deployment
from interlock.testing.clock import ManualClock

#: Years after any real "now" these tests run at: a decision by the real clock comes out otherwise.
FAR = datetime(2040, 1, 1, tzinfo=UTC)


def test_a_revocation_lapses_with_its_token_on_the_injected_clock(deployment: Deployment) -> None:
    """Loaded while a verifier may accept its token by ``now`` (``exp`` plus the longest
    leeway); dropped once ``now`` passes that.

    By the real clock a token expiring in 2040 would stay revoked (and loaded) for years.
    """
    clock = ManualClock(FAR)
    RevokedTokens(deployment.engine, now=clock).add(
        "jti-1", "order-sync", FAR + timedelta(minutes=10)
    )

    assert RevokedTokens(deployment.engine, sync_seconds=0, now=clock).contains("jti-1")
    clock.advance(timedelta(minutes=10) + MAX_LEEWAY - timedelta(seconds=1))
    assert RevokedTokens(deployment.engine, sync_seconds=0, now=clock).contains("jti-1")
    clock.advance(timedelta(seconds=2))
    assert not RevokedTokens(deployment.engine, sync_seconds=0, now=clock).contains("jti-1")


def test_a_revocation_is_stamped_and_purged_by_the_injected_clock(deployment: Deployment) -> None:
    """``revoked_at`` is the injected time; a purge at that clock forgets the ones whose token
    is past ``exp`` and the longest leeway, and keeps those only within the leeway."""
    clock = ManualClock(FAR)
    revoked = RevokedTokens(deployment.engine, now=clock)
    revoked.add("jti-short", "order-sync", FAR + timedelta(minutes=1))
    revoked.add("jti-long", "order-sync", FAR + timedelta(hours=1))
    with deployment.engine.connect() as connection:
        stamps = connection.execute(sa.text("SELECT revoked_at FROM oauth_revoked_tokens")).all()
    assert {_utc(row[0]) for row in stamps} == {FAR}
    clock.advance(timedelta(minutes=2))
    assert revoked.purge(clock.now) == 0  # jti-short's token still passes with leeway
    clock.advance(MAX_LEEWAY)
    assert revoked.purge(clock.now) == 1
    revoked.reload()
    assert revoked.known("jti-long")
    assert not revoked.known("jti-short")


def _utc(value: datetime | str) -> datetime:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value  # SQLite: text
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def test_revoking_a_client_revokes_its_tokens_issued_until_then_on_every_replica(
    deployment: Deployment,
) -> None:
    """The kill switch's cut: tokens of that client issued at or before it, none after."""
    clock = ManualClock(FAR)
    here = RevokedTokens(deployment.engine, now=clock)
    elsewhere = RevokedTokens(deployment.engine, sync_seconds=0, now=clock)
    issued = FAR.timestamp()
    clock.advance(timedelta(seconds=30))
    moment = here.revoke_client("order-sync")
    assert moment == clock.now
    assert here.contains("any-jti", "order-sync", issued)
    assert elsewhere.contains("any-jti", "order-sync", issued)  # from the store
    assert elsewhere.contains(None, "order-sync", int(moment.timestamp()))  # same second
    assert not elsewhere.contains("any-jti", "order-sync", moment.timestamp() + 1)
    assert not elsewhere.contains("any-jti", "other-client", issued)
    assert not elsewhere.contains("any-jti")


def test_a_client_revocation_is_kept_while_its_tokens_could_live(deployment: Deployment) -> None:
    """Tokens live at most an hour: the cut is purged after that (and leeway), not before."""
    clock = ManualClock(FAR)
    revoked = RevokedTokens(deployment.engine, sync_seconds=0, now=clock)
    revoked.revoke_client("order-sync")
    clock.advance(timedelta(minutes=64))
    revoked.purge(clock.now)
    assert revoked.contains(None, "order-sync", FAR.timestamp())
    clock.advance(timedelta(minutes=2))
    revoked.purge(clock.now)
    assert not revoked.contains(None, "order-sync", FAR.timestamp())


@pytest.mark.parametrize("way", ["recorded here", "heard over Redis"])
def test_a_revocation_made_during_a_reload_survives_it(deployment: Deployment, way: str) -> None:
    """A reload whose query ran before a revocation keeps that revocation in the mirror.

    It used to replace the mirror with what its query returned, so for up to a
    second (the next reload) the replica that recorded the revocation, or heard it
    over Redis, accepted the token again. The revocation lands here between the
    reload's query and the moment it installs its result.
    """
    clock = ManualClock(FAR)
    revoked = RevokedTokens(deployment.engine, now=clock)
    revoked.revoke_client("old-client")
    table = "FROM oauth_revoked_tokens"
    done: list[bool] = []

    def meanwhile(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if table in statement and "SELECT" in statement and not done:
            done.append(True)
            if way == "recorded here":
                revoked.add("jti-during", "order-sync", FAR + timedelta(minutes=10))
                revoked.revoke_client("kill")
            else:  # the messages another replica publishes
                revoked._heard({"data": b"jti-during"})
                revoked._heard_client({"data": f"kill {FAR.timestamp()!r}".encode()})

    sa.event.listen(deployment.engine, "after_cursor_execute", meanwhile)
    try:
        revoked.reload()
    finally:
        sa.event.remove(deployment.engine, "after_cursor_execute", meanwhile)
    assert done
    assert revoked.known("jti-during") is True
    assert revoked.known(None, "kill", FAR.timestamp()) is True
    assert revoked.known(None, "old-client", FAR.timestamp()) is True
