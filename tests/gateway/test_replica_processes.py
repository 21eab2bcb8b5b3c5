"""Two gateway *processes* on one PostgreSQL store and one Redis: limits, replay, revocation.

Replica A is the harness' gateway (in this process); replica B is a separate
``interlock serve`` process started with the same settings (data directory
with the keyring, store URL, Redis URL, public URL), as a second machine
behind a load balancer would be. Requests alternate between the two. What
tests/gateway/test_replicas.py checks between two gateways in one process —
single-use client assertions (private_key_jwt) and DPoP proofs, revocation
heard at once — is checked here across processes too, where nothing in memory
can be shared by accident.

Tolerance for the rate limit: none. Each decision is one atomic script on one
Redis, timed by Redis' own clock, so a per-client limit of N admits exactly N
in total, whichever replica a request reaches.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis
from joserfc import jws
from joserfc.jwk import ECKey

from interlock.crypto.jose import public_jwk
from interlock.crypto.rfc9449 import access_token_hash
from interlock.identity.client_keys import ClientKeys
from interlock.oauth.client_assertion import ASSERTION_TYPE
from interlock.testing.gateway import Env, Signer, running_gateway
from interlock.testing.services import REDIS
from tests.conftest import fresh_schema, need
from tests.gateway.test_replicas import FORM, _free_port, _token_form

# A second gateway process sharing PostgreSQL and Redis with the harness' gateway.
pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.redis]

_LIMIT_KEYS = "interlock:rl:{order-sync}:*"


@dataclass(frozen=True)
class Replicas:
    """Replica A (``env``, in process) and replica B's port (another process)."""

    env: Env
    other: int


def _wait_healthy(env: Env, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")
            pytest.fail(f"replica B exited with {process.returncode}: {output[-2000:]}")
        try:
            if env.request("GET", "/healthz", port=port)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail("replica B did not become healthy within 60 s")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """Both replicas, sharing a fresh PostgreSQL schema and the real Redis."""
    port = _free_port()
    public_url = f"https://127.0.0.1:{port}"
    redis_url = need(REDIS)
    workdir = tmp_path_factory.mktemp("replica-processes")
    with (
        fresh_schema() as database_url,
        running_gateway(
            workdir,
            database_url=database_url,
            redis_url=redis_url,
            port=port,
            public_url=public_url,
        ) as env,
    ):
        other = _free_port()
        settings = env.deployment.settings
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")},
            "INTERLOCK_DATA_DIR": str(Path(settings.data_dir).resolve()),
            "INTERLOCK_DATABASE_URL": database_url,
            "INTERLOCK_REDIS_URL": redis_url,
            "INTERLOCK_PUBLIC_URL": public_url,
            "INTERLOCK_AUTH_FAILURES_PER_IP": "100000/min",
            "INTERLOCK_LOG_FORMAT": "json",
            "INTERLOCK_LOG_LEVEL": "warning",
            "INTERLOCK_METRICS_LISTEN": "127.0.0.1:0",  # replicas each need a port of their own
        }
        log = (workdir / "replica-b.log").open("wb")
        process = subprocess.Popen(  # noqa: S603  (our own interpreter and CLI, no shell)
            [
                sys.executable,
                "-m",
                "interlock",
                "serve",
                "--listen",
                f"127.0.0.1:{other}",
                "--manifest",
                str(env.manifest_path),
            ],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(env, other, process, workdir / "replica-b.log")
            yield Replicas(env, other)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


def _forget_limits() -> None:
    client = redis.Redis.from_url(need(REDIS))
    try:
        for key in client.scan_iter(match=_LIMIT_KEYS):
            client.delete(key)
    finally:
        client.close()


def test_a_per_client_limit_of_n_admits_exactly_n_across_two_processes(
    replicas: Replicas,
) -> None:
    """per_client 3/hour: twelve requests alternating between the processes, three admitted."""
    env = replicas.env
    _forget_limits()
    try:
        token, _ = env.key(["orders.read"])
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [
            env.request("GET", "/limited/1001", headers, port=replicas.other if i % 2 else None)[0]
            for i in range(12)
        ]
    finally:
        _forget_limits()
    assert statuses[:3] == [200, 200, 200]
    assert statuses.count(200) == 3
    assert statuses.count(429) == 9


def test_a_signature_nonce_used_on_one_process_is_refused_on_the_other(
    replicas: Replicas,
) -> None:
    env = replicas.env
    token, _ = env.key(["orders.write"])
    signer = Signer(env)
    try:
        # Behind a load balancer both replicas answer one name; the Host field says A's.
        base = {"Host": f"127.0.0.1:{env.port}", "X-API-Key": token}
        body = b'{"note": "exactly once"}'
        headers = {**base, **signer.headers("POST", "/signed/orders/9", body)}
        status, _, payload = env.request(
            "POST", "/signed/orders/9", headers, body, port=replicas.other
        )
        assert status == 200, payload
        status, _, problem = env.request("POST", "/signed/orders/9", headers, body)
        assert (status, problem["type"]) == (403, "urn:interlock:problem:replayed-request")
        again = {**base, **signer.headers("POST", "/signed/orders/9", body)}
        assert env.request("POST", "/signed/orders/9", again, body)[0] == 200
        status, _, problem = env.request(
            "POST", "/signed/orders/9", again, body, port=replicas.other
        )
        assert (status, problem["type"]) == (403, "urn:interlock:problem:replayed-request")
    finally:
        signer.revoke()


def test_an_idempotency_key_used_on_one_process_is_replayed_on_the_other(
    replicas: Replicas,
) -> None:
    env = replicas.env
    token, _ = env.key(["orders.write"])
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Idempotency-Key": f'"{secrets.token_hex(8)}"',
    }
    body = b'{"amount": 25}'
    status, first_headers, first = env.request(
        "POST", "/orders/1001/payments", headers, body, port=replicas.other
    )
    assert status == 200, first
    status, replayed_headers, again = env.request("POST", "/orders/1001/payments", headers, body)
    assert status == 200
    assert replayed_headers["idempotency-replayed"] == "?1"
    assert again == first
    assert "idempotency-replayed" not in first_headers
    status, _, problem = env.request(
        "POST", "/orders/1001/payments", headers, b'{"amount": 26}', port=replicas.other
    )
    assert status == 422, problem


def test_a_client_assertion_used_on_one_process_is_refused_on_the_other(
    replicas: Replicas,
) -> None:
    """private_key_jwt's single-use jti holds across processes (Redis), both directions."""
    env = replicas.env
    key = ECKey.generate_key("P-256", private=True)
    ClientKeys(
        env.deployment.engine, env.deployment.keyring, env.gateway.gateway.manifest
    ).register("oauth-only", public_jwk(key, "ES256"), use="assertion")
    key.ensure_kid()

    def assertion() -> bytes:
        claims = {
            "iss": "oauth-only",
            "sub": "oauth-only",
            "aud": f"https://127.0.0.1:{env.port}",  # the shared public URL (RFC 7523bis)
            "exp": int(time.time()) + 60,
            "jti": secrets.token_urlsafe(12),
        }
        signed = jws.serialize_compact(
            {"alg": "ES256", "kid": key.kid}, json.dumps(claims).encode(), key, algorithms=["ES256"]
        )
        return _token_form(client_assertion_type=ASSERTION_TYPE, client_assertion=signed)

    first = assertion()
    status, _, body = env.request("POST", "/oauth2/token", FORM, first, port=replicas.other)
    assert status == 200, body
    status, _, body = env.request("POST", "/oauth2/token", FORM, first)
    assert (status, body["error"]) == (401, "invalid_client")
    second = assertion()
    assert env.request("POST", "/oauth2/token", FORM, second)[0] == 200
    status, _, body = env.request("POST", "/oauth2/token", FORM, second, port=replicas.other)
    assert (status, body["error"]) == (401, "invalid_client")


def test_a_dpop_proof_used_on_one_process_is_refused_on_the_other(replicas: Replicas) -> None:
    """A DPoP proof accepted by process A is a replay at process B; a fresh one passes there."""
    env = replicas.env
    key = ECKey.generate_key("P-256", private=True)
    base = f"https://127.0.0.1:{env.port}"

    def proof(method: str, url: str, token: str | None = None) -> str:
        claims: dict[str, object] = {"jti": secrets.token_urlsafe(12), "htm": method, "htu": url}
        claims["iat"] = int(time.time())
        if token:
            claims["ath"] = access_token_hash(token)
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
        return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=["ES256"])

    with env.client_secret() as secret:
        status, _, body = env.request(
            "POST",
            "/oauth2/token",
            {**FORM, **env.basic(secret), "DPoP": proof("POST", f"{base}/oauth2/token")},
            _token_form(),
            port=replicas.other,
        )
    assert status == 200, body
    token = body["access_token"]
    headers = {
        "Authorization": f"DPoP {token}",
        "DPoP": proof("GET", f"{base}/orders/1001", token),
        "Host": f"127.0.0.1:{env.port}",  # behind a load balancer both answer one name
    }
    assert env.request("GET", "/orders/1001", headers)[0] == 200
    assert env.request("GET", "/orders/1001", headers, port=replicas.other)[0] == 401
    fresh = {**headers, "DPoP": proof("GET", f"{base}/orders/1001", token)}
    assert env.request("GET", "/orders/1001", fresh, port=replicas.other)[0] == 200


def test_a_token_revoked_on_one_process_is_refused_on_the_other_at_once(
    replicas: Replicas,
) -> None:
    """Revoked at A; process B, which had the token in its verified cache, refuses it at once."""
    env = replicas.env
    with env.client_secret() as secret:
        basic = env.basic(secret)
        _, _, body = env.request("POST", "/oauth2/token", {**FORM, **basic}, _token_form())
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        assert env.request("GET", "/orders/1001", bearer, port=replicas.other)[0] == 200  # cached
        revoke = urlencode({"token": body["access_token"]}).encode()
        assert env.request("POST", "/oauth2/revoke", {**FORM, **basic}, revoke)[0] == 200
    # Announced over Redis: B hears it before its one-second reload of the store would.
    deadline = time.monotonic() + 0.9
    status = 200
    while status != 401 and time.monotonic() < deadline:
        status = env.request("GET", "/orders/1001", bearer, port=replicas.other)[0]
    assert status == 401
