"""Revocation (RFC 7009) and introspection (RFC 7662) agree with the verifier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.config.loader import load_manifest
from interlock.errors import InvalidTokenError
from interlock.oauth.lifetimes import MAX_LEEWAY
from interlock.oauth.revocation import TokenRevocations
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer
from interlock.testing.clock import ManualClock
from tests.oauth.conftest import EXAMPLE, ISSUER, OAuthKit


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


def test_introspection_refuses_a_client_the_manifest_no_longer_lets_use_oauth2(
    kit: OAuthKit, tmp_path: Path
) -> None:
    """As the gateway does: a token of a client without oauth2 (or gone) is not active."""
    token = (
        TokenIssuer(kit.keys, ISSUER)
        .issue("order-sync", frozenset({"orders.read"}), ISSUER)
        .access_token
    )
    revocations = TokenRevocations(kit.verifier, RevokedTokens(kit.deployment.engine))
    assert revocations.introspect(token, "privacy-desk", any_client=True)["active"] is True
    changed = tmp_path / "no-oauth2.yaml"
    text = EXAMPLE.read_text()
    assert "auth: [oauth2, mtls]" in text
    changed.write_text(text.replace("auth: [oauth2, mtls]", "auth: [mtls]", 1))
    kit.verifier.manifest = load_manifest(changed)
    with pytest.raises(InvalidTokenError):
        kit.verifier.verify(token)
    assert revocations.introspect(token, "privacy-desk", any_client=True) == {"active": False}
    assert revocations.introspect(token, "order-sync", any_client=False) == {"active": False}


def test_introspection_reports_only_the_scopes_the_client_still_holds(kit: OAuthKit) -> None:
    """The scope is the token's scopes the client's grants still allow, as the gateway applies."""
    token = (
        TokenIssuer(kit.keys, ISSUER)
        .issue("order-sync", frozenset({"orders.read", "sales.read"}), ISSUER)
        .access_token
    )
    revocations = TokenRevocations(kit.verifier, RevokedTokens(kit.deployment.engine))
    answer = revocations.introspect(token, "order-sync", any_client=False)
    assert answer["active"] is True
    assert answer["scope"] == "orders.read"
    assert kit.verifier.verify(token).scopes == frozenset({"orders.read"})
