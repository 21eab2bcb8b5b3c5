"""The kill switch's token cut covers every token an ended credential can still mint."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.cli.kill_switch import CREDENTIAL_PROPAGATION, end_client
from interlock.config.loader import load_manifest
from interlock.errors import InvalidTokenError
from interlock.gateway.crl import WATCH_SECONDS
from interlock.identity.client_secrets import RECENT_SECONDS, ClientSecrets
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer
from interlock.store import Deployment

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"
ISSUER = "https://gw.example"
CLIENT = "order-sync"


def test_a_token_minted_from_a_cached_secret_after_the_switch_is_refused(
    deployment: Deployment,
) -> None:
    """The gateway reuses a secret's row for RECENT_SECONDS: tokens it mints then are cut too.

    The cut used to be the moment of the switch, so a token the cached row let
    the client mint in the next whole second (``iat`` after the cut) lived on.
    """
    manifest = load_manifest(EXAMPLE)
    engine, keyring = deployment.engine, deployment.keyring
    secrets = ClientSecrets(engine, keyring, manifest)
    _, value = secrets.create(CLIENT)
    keys = SigningKeys(engine, keyring)
    keys.ensure()
    while time.time() % 1 > 0.5:  # the cut and the mint below fall in different seconds
        time.sleep(0.05)
    assert secrets.authenticate(CLIENT, value) == CLIENT  # the gateway reads (caches) the row
    read = datetime.now(UTC)

    ended = end_client(deployment, manifest, CLIENT)

    assert ended.client_secrets == 1
    assert secrets.authenticate_cached(CLIENT, value) == CLIENT  # still honoured, from the cache
    last_honoured = read + timedelta(seconds=RECENT_SECONDS)
    minted = TokenIssuer(keys, ISSUER, now=lambda: last_honoured).issue(
        CLIENT, frozenset({"orders.read"}), ISSUER
    )
    verifier = AccessTokenVerifier(keys, ISSUER, manifest, revoked=RevokedTokens(engine))
    with pytest.raises(InvalidTokenError) as refused:
        verifier.verify(minted.access_token)
    assert refused.value.reason.endswith("is revoked")


def test_the_cut_outlasts_every_credential_cache() -> None:
    """The allowance derives from the caches it covers, not from a number of its own."""
    assert timedelta(seconds=RECENT_SECONDS) < CREDENTIAL_PROPAGATION
    assert timedelta(seconds=WATCH_SECONDS) < CREDENTIAL_PROPAGATION
