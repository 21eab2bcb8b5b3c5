"""Two gateway replicas on one PostgreSQL store and one Redis: replay and revocation hold across them.

Replicas share the issuer (``INTERLOCK_PUBLIC_URL``), so a token, an
assertion or a DPoP proof accepted by one is the same credential at the other.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from interlock.config.loader import load_manifest
from interlock.crypto.jose import public_jwk
from interlock.crypto.rfc9449 import access_token_hash
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.identity.client_keys import ClientKeys
from interlock.oauth.client_assertion import ASSERTION_TYPE
from interlock.store import open_deployment
from interlock.testing.gateway import Env, Signer, running_gateway
from interlock.testing.services import REDIS
from tests.conftest import need

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Env, int, str]]:
    """Replica A (the harness' gateway), replica B's port, and a client secret."""
    port = _free_port()
    with running_gateway(
        tmp_path,
        database_url=postgres_url,
        redis_url=need(REDIS),
        port=port,
        public_url=f"https://127.0.0.1:{port}",
    ) as env:
        second = open_deployment(env.deployment.settings)
        manifest = load_manifest(env.manifest_path)
        other: RunningGateway = asyncio.run_coroutine_threadsafe(
            start_gateway(second, manifest, ListenerConfig(port=0)), env.loop
        ).result(timeout=30)
        try:
            with env.client_secret() as secret:
                yield env, other.port, secret
        finally:
            asyncio.run_coroutine_threadsafe(other.stop(), env.loop).result(timeout=30)
            second.close()


def _token_form(**extra: str) -> bytes:
    return urlencode({"grant_type": "client_credentials", **extra}).encode()


def test_an_assertion_used_on_one_replica_is_refused_on_the_other(
    replicas: tuple[Env, int, str],
) -> None:
    """private_key_jwt's single-use jti holds across replicas (Redis)."""
    env, other, _ = replicas
    key = ECKey.generate_key("P-256", private=True)
    ClientKeys(
        env.deployment.engine, env.deployment.keyring, env.gateway.gateway.manifest
    ).register("oauth-only", public_jwk(key, "ES256"), use="assertion")
    key.ensure_kid()
    now = int(time.time())
    claims = {
        "iss": "oauth-only",
        "sub": "oauth-only",
        "aud": f"https://127.0.0.1:{env.port}",  # the issuer, alone (RFC 7523bis)
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
    }
    assertion = jws.serialize_compact(
        {"alg": "ES256", "kid": key.kid}, json.dumps(claims).encode(), key, algorithms=["ES256"]
    )
    form = _token_form(client_assertion_type=ASSERTION_TYPE, client_assertion=assertion)
    assert env.request("POST", "/oauth2/token", FORM, form)[0] == 200
    status, _, body = env.request("POST", "/oauth2/token", FORM, form, port=other)
    assert (status, body["error"]) == (401, "invalid_client")


def test_a_dpop_proof_used_on_one_replica_is_refused_on_the_other(
    replicas: tuple[Env, int, str],
) -> None:
    """A DPoP proof replayed at the second replica (same public URL) is refused."""
    env, other, secret = replicas
    basic = env.basic(secret)
    key = ECKey.generate_key("P-256", private=True)
    base = f"https://127.0.0.1:{env.port}"

    def proof(method: str, url: str, token: str | None = None) -> str:
        claims = {
            "jti": secrets.token_urlsafe(12),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if token:
            claims["ath"] = access_token_hash(token)
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
        return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=["ES256"])

    status, _, body = env.request(
        "POST",
        "/oauth2/token",
        {**FORM, **basic, "DPoP": proof("POST", f"{base}/oauth2/token")},
        _token_form(),
    )
    assert status == 200, body
    token = body["access_token"]
    once = proof("GET", f"{base}/orders/1001", token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": once, "Host": f"127.0.0.1:{env.port}"}
    assert env.request("GET", "/orders/1001", headers)[0] == 200
    assert env.request("GET", "/orders/1001", headers, port=other)[0] == 401
    fresh = {**headers, "DPoP": proof("GET", f"{base}/orders/1001", token)}
    assert env.request("GET", "/orders/1001", fresh, port=other)[0] == 200


def test_a_revocation_on_one_replica_takes_effect_on_the_other_at_once(
    replicas: tuple[Env, int, str],
) -> None:
    """Revoked at A; B, which had the token in its verified cache, refuses it right away."""
    env, other, secret = replicas
    basic = env.basic(secret)
    _, _, body = env.request("POST", "/oauth2/token", {**FORM, **basic}, _token_form())
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert env.request("GET", "/orders/1001", bearer, port=other)[0] == 200  # now cached at B
    revoke = urlencode({"token": body["access_token"]}).encode()
    assert env.request("POST", "/oauth2/revoke", {**FORM, **basic}, revoke)[0] == 200
    deadline = time.monotonic() + 0.5  # well under the one-second store reload
    status = 200
    while status != 401 and time.monotonic() < deadline:
        status = env.request("GET", "/orders/1001", bearer, port=other)[0]
    assert status == 401


def test_an_idempotency_key_used_on_one_replica_is_replayed_on_the_other(
    replicas: tuple[Env, int, str],
) -> None:
    """The stored response is shared through Redis: the retry at B is a replay, not a second call."""
    env, other, _ = replicas
    token, _ = env.key(["orders.write"])
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Idempotency-Key": f'"{secrets.token_hex(8)}"',
    }
    body = b'{"amount": 10}'
    status, first_headers, first = env.request("POST", "/orders/1001/payments", headers, body)
    assert status == 200, first
    status, replayed_headers, again = env.request(
        "POST", "/orders/1001/payments", headers, body, port=other
    )
    assert status == 200
    assert replayed_headers["idempotency-replayed"] == "?1"
    assert again == first
    assert "idempotency-replayed" not in first_headers


def test_a_signature_nonce_used_on_one_replica_is_refused_on_the_other(
    replicas: tuple[Env, int, str],
) -> None:
    """RFC 9421 nonces are single-use across replicas (Redis), and both verify the same key."""
    env, other, _ = replicas
    token, _ = env.key(["orders.write"])
    signer = Signer(env)
    # Behind a load balancer both replicas answer one name; here the Host field says A's.
    host = {"Host": f"127.0.0.1:{env.port}", "X-API-Key": token}
    body = b'{"note": "once"}'
    headers = {**host, **signer.headers("POST", "/signed/orders/7", body)}
    status, _, payload = env.request("POST", "/signed/orders/7", headers, body, port=other)
    assert status == 200, payload
    status, _, problem = env.request("POST", "/signed/orders/7", headers, body)
    assert status == 403
    assert problem["type"].endswith("replayed-request")
    fresh = {**host, **signer.headers("POST", "/signed/orders/7", body)}
    assert env.request("POST", "/signed/orders/7", fresh, body)[0] == 200
    signer.revoke()
