"""`interlock clients revoke` is a kill switch: on two running replicas, nothing of the client works.

Replica A is the harness' gateway, replica B a second gateway on the same
PostgreSQL store and Redis that also asks for client certificates from the
deployment's PKI. The client ``every-way`` holds every kind of credential; each
one works at both replicas, then the CLI revokes the client, and within the
documented propagation time (2 s) every one is refused at both, including the
access token B had already verified and cached.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import secrets
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from interlock.cli.main import main
from interlock.config.loader import load_manifest
from interlock.crypto.jose import public_jwk
from interlock.crypto.keyfile import write_private_file
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.identity.client_keys import ClientKeys
from interlock.oauth.client_assertion import ASSERTION_TYPE
from interlock.pki.authority import Pki
from interlock.secrets.policy import AccessPolicy
from interlock.store import open_deployment
from interlock.testing.gateway import Env, Signer, running_gateway
from interlock.testing.services import REDIS
from tests.conftest import isolate_cli, need
from tests.gateway.test_replicas import _free_port

CLIENT = "every-way"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TOKEN_FORM = urlencode({"grant_type": "client_credentials"}).encode()
PROPAGATION_SECONDS = 2.0  # docs/oauth.md, "Cutting a client off"


@dataclass
class Replicas:
    """Replica A (the harness), replica B's port, and B's own PKI-verified listener."""

    env: Env
    other: int


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[Replicas]:
    """Two replicas on one store and one Redis; B asks for client certificates."""
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
        listener = ListenerConfig(port=0, client_auth="optional")
        other: RunningGateway = asyncio.run_coroutine_threadsafe(
            start_gateway(second, manifest, listener), env.loop
        ).result(timeout=30)
        try:
            yield Replicas(env, other.port)
        finally:
            asyncio.run_coroutine_threadsafe(other.stop(), env.loop).result(timeout=30)
            second.close()


def _mtls_status(env: Env, port: int, files: tuple[Path, Path]) -> int:
    """A fresh connection (no session to resume) with the certificate; 0: refused at the handshake."""
    context = ssl.create_default_context(cafile=str(env.ca_file))
    context.load_cert_chain(*files)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", "/mtls/orders/1001")
        response = connection.getresponse()
        response.read()
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
        return 0
    finally:
        connection.close()
    return response.status


def _assertion(env: Env, key: ECKey) -> bytes:
    claims = {
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": f"https://127.0.0.1:{env.port}",  # the issuer alone (RFC 7523bis)
        "exp": int(time.time()) + 60,
        "jti": secrets.token_urlsafe(12),
    }
    assertion = jws.serialize_compact(
        {"alg": "ES256", "kid": key.kid}, json.dumps(claims).encode(), key, algorithms=["ES256"]
    )
    return urlencode(
        {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
    ).encode()


def _refused_within(seconds: float, works: Callable[[], bool]) -> float:
    """How long until ``works()`` is false; fails the test after ``seconds``."""
    started = time.monotonic()
    while works():
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"still accepted {elapsed:.1f} s after the kill switch"
        time.sleep(0.1)
    return time.monotonic() - started


def test_clients_revoke_ends_every_way_in_on_both_replicas(
    replicas: Replicas,
    tmp_path: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Secrets, keys, API keys, signature keys, certificates, tokens and grants all end."""
    env, other = replicas.env, replicas.other
    deployment, manifest = env.deployment, env.gateway.gateway.manifest
    # Every way in, issued the way operators and clients get them.
    api_key = env.keys.create(CLIENT).token
    with env.client_secret(CLIENT) as secret:
        basic = env.basic(secret, CLIENT)
        assertion_key = ECKey.generate_key("P-256", private=True)
        ClientKeys(deployment.engine, deployment.keyring, manifest).register(
            CLIENT, public_jwk(assertion_key, "ES256"), use="assertion"
        )
        assertion_key.ensure_kid()
        signer = Signer(env, client=CLIENT)
        pki = Pki(
            deployment.engine,
            deployment.keyring,
            deployment.deployment_id,
            deployment.settings.trust_domain,
        )
        issued = pki.issue_client(CLIENT)
        cert, key = tmp_path / "every-way.pem", tmp_path / "every-way.key"
        cert.write_bytes(issued.certificate_pem)
        write_private_file(key, issued.private_key_pem)
        AccessPolicy(deployment.engine).grant(CLIENT, "erp/*", ["read"])

        status, _, body = env.request("POST", "/oauth2/token", {**FORM, **basic}, TOKEN_FORM)
        assert status == 200, body
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        by_key = {"X-API-Key": api_key}

        def works(port: int, headers: dict[str, str], path: str = "/orders/1001") -> bool:
            return env.request("GET", path, headers, port=port)[0] == 200

        def token_with(headers: dict[str, str], form: bytes, port: int) -> bool:
            return (
                env.request("POST", "/oauth2/token", {**FORM, **headers}, form, port=port)[0] == 200
            )

        for port in (env.port, other):
            assert works(port, by_key)
            assert works(port, bearer)  # B now has the token in its verified cache
            assert token_with(basic, TOKEN_FORM, port)
        # The vault takes only a token issued for the gateway itself (resource = its issuer).
        vault_form = urlencode(
            {"grant_type": "client_credentials", "resource": f"https://127.0.0.1:{env.port}"}
        ).encode()
        status, _, body = env.request("POST", "/oauth2/token", {**FORM, **basic}, vault_form)
        assert status == 200, body
        for_vault = {"Authorization": f"Bearer {body['access_token']}"}
        assert works(env.port, for_vault, "/v1/secrets/erp/api-key")
        assert token_with({}, _assertion(env, assertion_key), env.port)
        assert _mtls_status(env, other, (cert, key)) == 200

        # The kill switch, through the CLI, on the same store and Redis.
        isolate_cli(
            monkeypatch,
            tmp_path,
            DATABASE_URL=postgres_url,
            REDIS_URL=need(REDIS),
            PUBLIC_URL=f"https://127.0.0.1:{env.port}",
        )
        capsys.readouterr()
        assert main(["clients", "revoke", CLIENT, "-m", str(env.manifest_path)]) == 0
        out = capsys.readouterr().out
        for line in (
            f"ended for client {CLIENT}:",
            "client secrets         1",
            "private_key_jwt keys   1",
            "API keys               1",
            "signature keys         1",
            f"certificates (on CRL)  1: {issued.serial}",
            "access tokens          every one issued up to ",
            "vault grants           1: erp/* (read)",
        ):
            assert line in out
        assert api_key not in out

        for port in (env.port, other):
            _refused_within(PROPAGATION_SECONDS, partial(works, port, by_key))
            _refused_within(PROPAGATION_SECONDS, partial(works, port, bearer))
            vault_path = "/v1/secrets/erp/api-key"
            _refused_within(PROPAGATION_SECONDS, partial(works, port, for_vault, vault_path))
            _refused_within(PROPAGATION_SECONDS, partial(token_with, basic, TOKEN_FORM, port))
        _refused_within(
            PROPAGATION_SECONDS, lambda: token_with({}, _assertion(env, assertion_key), other)
        )
        _refused_within(PROPAGATION_SECONDS, lambda: _mtls_status(env, other, (cert, key)) == 200)
        assert AccessPolicy(deployment.engine).grants(CLIENT) == []
        assert signer.keys.resolve(signer.keyid) is None
