"""Migration 0011: client secrets and both kinds of client key move to identity's tables."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from joserfc.jwk import ECKey

from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.identity.client_keys import ClientKeys
from interlock.identity.public_keys import public_key_document
from interlock.store import initialise
from interlock.store.migrate import downgrade, upgrade

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"
BEFORE = "0010_certificate_validity"


def test_client_credentials_move_to_identity_and_back(tmp_path: Path, store_url: str) -> None:
    """Rows of the three old tables arrive unchanged, keep working, and go back on downgrade."""
    deployment = initialise(Settings(data_dir=tmp_path / "d", database_url=store_url))
    engine, keyring = deployment.engine, deployment.keyring
    downgrade(engine, BEFORE)
    now = datetime.now(UTC)
    later = now + timedelta(days=1)
    assertion = public_key_document(ECKey.generate_key("P-256").as_dict(private=False))
    signing = public_key_document(ECKey.generate_key("P-256").as_dict(private=False))
    hmac = secrets.token_bytes(32)
    hmac_id = "hs-" + secrets.token_hex(12)
    sealed = keyring.seal(hmac, f"interlock:signature-key:{hmac_id}".encode())
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO oauth_client_secrets VALUES (:i, 'order-sync', :h, :c, :e, NULL)"),
            {"i": "s1", "h": b"\x01" * 32, "c": now, "e": later},
        )
        connection.execute(
            sa.text(
                "INSERT INTO oauth_client_keys VALUES (:k, 'order-sync', 'ES256', :j, :c, NULL, NULL)"
            ),
            {"k": assertion["kid"], "j": json.dumps(assertion), "c": now},
        )
        for keyid, alg, jwk, secret in (
            (signing["kid"], "ecdsa-p256-sha256", json.dumps(signing), None),
            (hmac_id, "hmac-sha256", None, sealed),
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO replay_signature_keys "
                    "VALUES (:k, 'analytics-feed', :a, :j, :s, :c, NULL, NULL)"
                ),
                {"k": keyid, "a": alg, "j": jwk, "s": secret, "c": now},
            )
    upgrade(engine)
    with engine.connect() as connection:
        moved = connection.execute(
            sa.text("SELECT kid, use, client FROM identity_client_keys ORDER BY use, kid")
        ).all()
        secret_rows = connection.execute(
            sa.text("SELECT id, client FROM identity_client_secrets")
        ).all()
    assert sorted(tuple(r) for r in moved) == sorted(
        [
            (assertion["kid"], "assertion", "order-sync"),
            (signing["kid"], "signature", "analytics-feed"),
            (hmac_id, "signature", "analytics-feed"),
        ]
    )
    assert [tuple(r) for r in secret_rows] == [("s1", "order-sync")]
    keys = ClientKeys(engine, keyring, load_manifest(EXAMPLE))
    assert set(keys.public_keys("order-sync")) == {assertion["kid"]}
    resolved = keys.resolve(hmac_id)
    assert resolved is not None
    assert (resolved.client, resolved.alg, resolved.key) == ("analytics-feed", "hmac-sha256", hmac)
    downgrade(engine, BEFORE)
    with engine.connect() as connection:
        back = connection.execute(sa.text("SELECT sealed_secret FROM replay_signature_keys"))
        assert sealed in {row[0] for row in back}
        assert connection.execute(sa.text("SELECT count(*) FROM oauth_client_keys")).scalar() == 1
        assert connection.execute(sa.text("SELECT id FROM oauth_client_secrets")).scalar() == "s1"
    deployment.close()
