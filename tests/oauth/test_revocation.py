"""Revocation (RFC 7009) and introspection (RFC 7662) agree with the verifier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from interlock.errors import InvalidTokenError
from interlock.oauth.lifetimes import MAX_LEEWAY
from interlock.oauth.revocation import TokenRevocations
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer
from interlock.testing.clock import ManualClock
from tests.oauth.conftest import ISSUER, OAuthKit


def test_a_revoked_token_stays_refused_for_the_leeway_after_its_exp(kit: OAuthKit) -> None:
    """The verifier accepts a token until exp + leeway: its revocation must last as long.

    Revocations used to be reloaded and purged at ``exp``, so within the leeway the
    token verified again and introspected as active, on every replica.
    """
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    engine = kit.deployment.engine
    revoked = RevokedTokens(engine, sync_seconds=0, now=clock)
    verifier = AccessTokenVerifier(
        kit.keys, ISSUER, kit.manifest, now=clock, revoked=revoked, leeway=MAX_LEEWAY
    )
    issuer = TokenIssuer(kit.keys, ISSUER, timedelta(seconds=2), now=clock)
    token = issuer.issue("order-sync", frozenset({"orders.read"}), ISSUER).access_token
    revocations = TokenRevocations(verifier, revoked)
    assert revocations.revoke(token, "order-sync")

    clock.advance(timedelta(seconds=2) + MAX_LEEWAY - timedelta(seconds=1))  # past exp
    revoked.purge(clock.now)  # the maintenance round runs in between
    with pytest.raises(InvalidTokenError, match="invalid") as refused:
        verifier.verify(token)
    assert "revoked" in refused.value.reason
    assert revocations.introspect(token, "order-sync", any_client=True) == {"active": False}
    elsewhere = RevokedTokens(engine, sync_seconds=0, now=clock)  # another replica's mirror
    other = AccessTokenVerifier(
        kit.keys, ISSUER, kit.manifest, now=clock, revoked=elsewhere, leeway=MAX_LEEWAY
    )
    with pytest.raises(InvalidTokenError):
        other.verify(token)
