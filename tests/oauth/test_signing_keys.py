"""Signing keys roll over without breaking verifiers: published early, retired late."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from interlock.crypto.jose import import_public_jwk, sign_compact, verify_compact
from interlock.crypto.keyring import Keyring
from interlock.errors import NotFoundError
from interlock.oauth.signing_keys import KeyTimings, SigningKeys
from interlock.store import Deployment
from interlock.testing.clock import ManualClock


@pytest.fixture
def keys(deployment: Deployment, clock: ManualClock) -> SigningKeys:
    """ES256 keys with short, readable timings."""
    timings = KeyTimings(
        publish_ahead=timedelta(minutes=10),
        max_token_lifetime=timedelta(minutes=60),
        leeway=timedelta(minutes=5),
        rotate_every=timedelta(days=30),
    )
    return SigningKeys(deployment.engine, deployment.keyring, "ES256", timings, now=clock)


def _kids(keys: SigningKeys) -> list[str]:
    return [k["kid"] for k in keys.jwks()["keys"]]


def test_no_key_until_ensured_then_one_that_signs_at_once(keys: SigningKeys) -> None:
    """The first key signs immediately: there are no tokens to keep verifiable yet."""
    with pytest.raises(NotFoundError):
        keys.signer()
    keys.ensure()
    signer = keys.signer()
    assert _kids(keys) == [signer.kid]
    token = sign_compact(b"{}", signer.key, "ES256")
    public = {k["kid"]: import_public_jwk(k) for k in keys.jwks()["keys"]}
    assert verify_compact(token, public)[1] == b"{}"


def test_rotation_publishes_first_signs_later_retires_last(
    keys: SigningKeys, clock: ManualClock
) -> None:
    """New key: in the JWKS at once, signing after 10 min; old key gone 65 min after that."""
    keys.ensure()
    old = keys.signer().kid
    new = keys.rotate()
    assert _kids(keys) == [old, new]
    assert keys.signer().kid == old  # the new key is published but does not sign yet
    clock.now += timedelta(minutes=10)
    assert keys.signer().kid == new
    assert old in _kids(keys)  # tokens signed by the old key are still valid
    clock.now += timedelta(minutes=64)
    assert old in _kids(keys)
    clock.now += timedelta(minutes=1)
    assert _kids(keys) == [new]
    keys.ensure()  # purges the retired key
    with keys._engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM oauth_signing_keys")).scalar() == 1


def test_scheduled_rotation(keys: SigningKeys, clock: ManualClock) -> None:
    """ensure() rotates once the signing key is older than rotate_every."""
    keys.ensure()
    first = keys.signer().kid
    clock.now += timedelta(days=29)
    keys.ensure()
    assert len(_kids(keys)) == 1
    clock.now += timedelta(days=1)
    keys.ensure()
    assert len(_kids(keys)) == 2
    clock.now += timedelta(minutes=10)
    assert keys.signer().kid != first


def test_private_keys_are_sealed_and_jwks_is_public_only(
    keys: SigningKeys, deployment: Deployment
) -> None:
    """The database never holds a private JWK in clear; the JWKS has no private members."""
    keys.ensure()
    with deployment.engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT private_jwk FROM oauth_signing_keys")).scalar()
    assert stored is not None
    assert b'"d"' not in stored
    (published,) = keys.jwks()["keys"]
    assert "d" not in published
    assert published["use"] == "sig"
    assert published["alg"] == "ES256"
    assert json.dumps(published)


@pytest.mark.parametrize("alg", ["Ed25519", "RS256"])
def test_other_algorithms_sign_and_publish(deployment: Deployment, alg: str) -> None:
    """Ed25519 and RS256 keys are selectable and verify like ES256."""
    keys = SigningKeys(deployment.engine, deployment.keyring, alg)
    keys.ensure()
    signer = keys.signer()
    assert signer.alg == alg
    token = sign_compact(b"{}", signer.key, alg)
    public = {k["kid"]: import_public_jwk(k) for k in keys.jwks()["keys"]}
    assert verify_compact(token, public)[1] == b"{}"


def test_replicas_running_the_schedule_together_rotate_once(
    keys: SigningKeys, deployment: Deployment, clock: ManualClock
) -> None:
    """Several replicas' schedules fire at once: exactly one successor key appears."""
    keys.ensure()
    replicas = [
        SigningKeys(deployment.engine, deployment.keyring, "ES256", keys.timings, clock)
        for _ in range(4)
    ]
    clock.now += timedelta(days=31)
    for replica in replicas:
        replica.ensure()
    assert len(_kids(keys)) == 2


def test_the_signer_is_unsealed_once(keys: SigningKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issuing many tokens costs one unseal, not one per token."""
    keys.ensure()
    opened = 0
    real_open = Keyring.open

    def counting_open(self: Keyring, data: bytes, aad: bytes) -> bytes:
        nonlocal opened
        opened += 1
        return real_open(self, data, aad)

    monkeypatch.setattr(Keyring, "open", counting_open)
    kids = {keys.signer().kid for _ in range(100)}
    assert len(kids) == 1
    assert opened == 1
