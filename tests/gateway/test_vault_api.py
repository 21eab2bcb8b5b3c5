"""The vault over HTTPS: clients read what the policy grants, with a token or a certificate."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import cast
from urllib.parse import urlencode

import pytest
from sqlalchemy import create_engine, select

from interlock.actors import Operator
from interlock.audit.schema import BODIES
from interlock.audit.sink import MemorySink
from interlock.gateway.endpoints import VaultEndpoint
from interlock.gateway.vault_api import PREFIX
from interlock.sdk import ClientCredentials, InterlockAuth
from interlock.sdk.secrets import SecretsClient, VaultError
from interlock.secrets.vault import Vault
from interlock.testing.gateway import Env
from tests.gateway.test_mtls import ClientCA, optional, test_ca

__all__ = ["optional", "test_ca"]  # module-scoped fixtures shared with the mTLS tests

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def vault(env: Env) -> Iterator[Vault]:
    """The deployment's vault, with grants for oauth-only removed afterwards."""
    vault = Vault(
        env.deployment.engine, env.deployment.keyring, cache_seconds=0, audit=MemorySink()
    )
    yield vault
    for grant in vault.policy.grants():
        vault.policy.revoke(grant.client, grant.pattern)


def _token(env: Env, secret: str) -> str:
    status, _, body = env.request(
        "POST",
        "/oauth2/token",
        {**FORM, **env.basic(secret)},
        urlencode({"grant_type": "client_credentials"}).encode(),
    )
    assert status == 200, body
    token = str(body["access_token"])
    env.issued_tokens.append(token)
    return token


def _client(env: Env, secret: str) -> SecretsClient:
    credentials = ClientCredentials(
        f"https://127.0.0.1:{env.port}/oauth2/token",
        "oauth-only",
        client_secret=secret,
        verify=str(env.ca_file),
    )
    return SecretsClient(
        f"https://127.0.0.1:{env.port}", auth=InterlockAuth(credentials), verify=str(env.ca_file)
    )


def test_a_client_reads_what_it_is_granted_through_the_sdk(
    env: Env, vault: Vault, secret: str
) -> None:
    """Token-authenticated reads; versions and stages; everything else refused."""
    vault.write("partner/api-token", b"partner-v1", actor=Operator("admin:test"))
    vault.write("partner/api-token", b"partner-v2", actor=Operator("admin:test"))
    vault.write("erp/other", b"not-yours", actor=Operator("admin:test"))
    with _client(env, secret) as client:
        with pytest.raises(VaultError) as denied:
            client.get("partner/api-token")
        assert (denied.value.status, denied.value.kind) == (403, "access-denied")
        vault.policy.grant("oauth-only", "partner/*", ["read", "list"])
        value = client.get("partner/api-token")
        assert (value.reveal(), value.version, value.stage) == (b"partner-v2", 2, "current")
        assert "partner-v2" not in repr(value)
        assert client.get("partner/api-token", stage="previous").reveal() == b"partner-v1"
        assert client.get("partner/api-token", version=1).reveal() == b"partner-v1"
        assert [s["name"] for s in client.list()] == ["partner/api-token"]
        with pytest.raises(VaultError) as other:
            client.get("erp/other")
        assert other.value.status == 403
        with pytest.raises(VaultError) as missing:
            client.get("partner/nothing")
        assert missing.value.status == 404
        with pytest.raises(VaultError) as write:
            client.put("partner/api-token", b"mine")
        assert write.value.status == 403


def test_writes_with_check_and_set(env: Env, vault: Vault, secret: str) -> None:
    """A write grant; cas conflicts are 409."""
    vault.policy.grant("oauth-only", "partner/**", ["read", "write"])
    with _client(env, secret) as client:
        assert client.put("partner/inbound/hmac", b"first", cas=0) == 1
        assert client.put("partner/inbound/hmac", b"second", cas=1) == 2
        with pytest.raises(VaultError) as conflict:
            client.put("partner/inbound/hmac", b"stale", cas=1)
        assert (conflict.value.status, conflict.value.kind) == (409, "version-conflict")
        assert client.get("partner/inbound/hmac").reveal() == b"second"


def test_the_sdk_cache_follows_the_lease_and_sees_a_rotation(
    env: Env, vault: Vault, secret: str
) -> None:
    """Cached within the lease; after it, the new version."""
    vault.policy.grant("oauth-only", "partner/*", ["read"])
    vault.write("partner/rotating", b"before", actor=Operator("admin:test"))
    mount = env.gateway.gateway.endpoints.find(PREFIX, "GET")
    assert mount is not None
    api = cast(VaultEndpoint, mount.endpoint).vault
    lease, api.lease_seconds = api.lease_seconds, 0
    try:
        with _client(env, secret) as client:
            assert client.get("partner/rotating").reveal() == b"before"
            vault.write("partner/rotating", b"after", actor=Operator("admin:test"))
            assert client.get("partner/rotating").reveal() == b"after"
    finally:
        api.lease_seconds = lease


def test_api_keys_and_missing_credentials_are_refused(env: Env, vault: Vault) -> None:
    """The vault takes tokens and certificates only; without a credential, 401."""
    vault.write("partner/k", b"v", actor=Operator("admin:test"))
    vault.policy.grant("order-sync", "partner/*", ["read"])
    token, _ = env.key(["orders.read"])
    status, headers, body = env.request("GET", "/v1/secrets/partner/k", {"X-API-Key": token})
    assert (status, body["type"]) == (403, "urn:interlock:problem:credential-not-accepted")
    assert headers["content-type"].startswith("application/problem+json")
    status, headers, _ = env.request("GET", "/v1/secrets/partner/k")
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("DELETE", "/v1/secrets/partner/k", None, 405),
        ("PUT", "/v1/secrets", b"{}", 405),
        ("GET", "/v1/secrets/partner/k?version=abc", None, 400),
        ("GET", "/v1/secrets/partner/k?version=1&stage=current", None, 400),
        ("GET", "/v1/secrets/partner/k?stage=weird", None, 400),
        ("GET", "/v1/secrets/Partner/K", None, 400),
        ("PUT", "/v1/secrets/partner/k", b"not json", 400),
        ("PUT", "/v1/secrets/partner/k", b'{"value": "***"}', 400),
        ("PUT", "/v1/secrets/partner/k", b'{"value": "dg==", "extra": 1}', 400),
        ("PUT", "/v1/secrets/partner/k", b'{"value": "dg==", "cas": true}', 400),
    ],
)
def test_bad_requests_get_problems(  # noqa: PLR0917  (one parametrised case)
    env: Env, vault: Vault, secret: str, method: str, path: str, body: bytes | None, status: int
) -> None:
    """Malformed requests are refused with a problem document, nothing written."""
    written = vault.write("partner/k", b"v", actor=Operator("admin:test"))
    vault.policy.grant("oauth-only", "partner/*", ["read", "write"])
    headers = {"Authorization": f"Bearer {_token(env, secret)}", "Content-Type": "application/json"}
    got, found, problem = env.request(method, path, headers, body)
    assert got == status, problem
    assert found["content-type"].startswith("application/problem+json")
    assert vault.info("partner/k", actor=Operator("admin:test")).current_version == written.version


def test_a_value_is_never_in_logs_and_reads_are_on_the_audit_trail(
    env: Env, vault: Vault, secret: str
) -> None:
    """The value travels base64 in the body only; reads are recorded as the client."""
    value = "vault-value-" + base64.b16encode(b"unique-marker").decode()
    vault.write("partner/logged", value.encode(), actor=Operator("admin:test"))
    vault.policy.grant("oauth-only", "partner/*", ["read"])
    status, headers, body = env.request(
        "GET", "/v1/secrets/partner/logged", {"Authorization": f"Bearer {_token(env, secret)}"}
    )
    assert status == 200
    assert headers["cache-control"] == "no-store"
    assert base64.b64decode(body["value"]) == value.encode()
    assert value not in env.logs.getvalue()
    engine = create_engine(env.deployment.settings.audit_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(BODIES.c.body).order_by(BODIES.c.idx)).all()
    finally:
        engine.dispose()
    entries = [json.loads(row.body) for row in rows]
    reads = [
        e
        for e in entries
        if e["action"] == "secret.read" and e["details"].get("secret") == "partner/logged"
    ]
    assert [(e["actor"], e["details"]["version"]) for e in reads] == [("client:oauth-only", 1)]
    assert not any(value in row.body.decode() for row in rows)


def test_a_client_certificate_authenticates_to_the_vault(
    env: Env, vault: Vault, test_ca: ClientCA, optional: object
) -> None:
    """mTLS: the certificate names cert-sync; its grant decides."""
    vault.write("certs/thing", b"for-cert-sync", actor=Operator("admin:test"))
    vault.policy.grant("cert-sync", "certs/*", ["read"])
    files = test_ca.client("cert-sync", "vault-cert-sync")
    port = optional.port  # type: ignore[attr-defined]
    with SecretsClient(
        f"https://127.0.0.1:{port}",
        cert=(str(files[0]), str(files[1])),
        verify=str(env.ca_file),
    ) as client:
        assert client.get("certs/thing").reveal() == b"for-cert-sync"
        with pytest.raises(VaultError) as denied:
            client.get("partner/k")
        assert denied.value.status in {403, 404}


def test_the_listing_shows_only_names(env: Env, vault: Vault, secret: str) -> None:
    """A listing carries no value."""
    vault.write("partner/listed", b"hidden-value", actor=Operator("admin:test"))
    vault.policy.grant("oauth-only", "partner/**", ["list"])
    status, _, body = env.request(
        "GET", "/v1/secrets?prefix=partner", {"Authorization": f"Bearer {_token(env, secret)}"}
    )
    assert status == 200
    assert "hidden-value" not in json.dumps(body)
    assert "partner/listed" in [s["name"] for s in body["secrets"]]
