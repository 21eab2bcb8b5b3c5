"""The gateway's schedule: key rotation when due, expired revocations and nonces forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from interlock.oauth.lifetimes import MAX_LEEWAY
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.server import maintain_once
from interlock.oauth.signing_keys import SigningKeys
from interlock.replay.seen import SqlSeen
from interlock.store import Deployment


def _count(deployment: Deployment, table: str) -> int:
    with deployment.engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608


def test_one_round_rotates_and_purges(deployment: Deployment) -> None:
    """A first key appears; revocations past exp + leeway and seen values go; live ones stay."""
    keys = SigningKeys(deployment.engine, deployment.keyring)
    revoked = RevokedTokens(deployment.engine)
    seen = SqlSeen(deployment.engine)
    now = datetime.now(UTC)
    revoked.add("old", "c", now - MAX_LEEWAY - timedelta(minutes=1))
    revoked.add("leeway", "c", now - timedelta(minutes=1))  # a verifier may still accept it
    revoked.add("live", "c", now + timedelta(minutes=10))
    seen.first_use("dpop", "old", now - timedelta(seconds=1))
    seen.first_use("dpop", "live", now + timedelta(minutes=1))
    created = maintain_once(keys, revoked, seen)
    assert created is not None  # the first key: what the audit trail records as a rotation
    assert maintain_once(keys, revoked, seen) is None  # nothing due on the next round
    assert len(keys.jwks()["keys"]) == 1
    assert keys.jwks()["keys"][0]["kid"] == created
    assert _count(deployment, "oauth_revoked_tokens") == 2
    assert revoked.contains("live")
    assert revoked.contains("leeway")
    assert _count(deployment, "replay_seen") == 1
