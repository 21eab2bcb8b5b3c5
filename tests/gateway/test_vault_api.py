"""The vault over HTTPS: clients read what the policy grants, with a token or a certificate."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import make_mocked_request
from sqlalchemy import create_engine, select

from interlock.actors import Operator
from interlock.audit.schema import BODIES
from interlock.audit.sink import MemorySink
from interlock.errors import Refusal
from interlock.gateway.endpoints import VaultEndpoint
from interlock.gateway.vault_api import PREFIX, VaultApi
from interlock.identity.grants import Principal
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


#: What a vault client asks for: the vault's scopes, for the gateway itself (RFC 8707).
VAULT_SCOPES = "vault.read vault.write"


def _issuer(env: Env) -> str:
    return f"https://127.0.0.1:{env.port}"


def _token(
    env: Env, secret: str, scope: str | None = VAULT_SCOPES, *, for_gateway: bool = True
) -> str:
    form = {"grant_type": "client_credentials"}
    if scope is not None:
        form["scope"] = scope
    if for_gateway:
        form["resource"] = _issuer(env)
    status, _, body = env.request(
        "POST", "/oauth2/token", {**FORM, **env.basic(secret)}, urlencode(form).encode()
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
        scope=VAULT_SCOPES,
        resource=_issuer(env),
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


def test_a_pending_version_is_not_served_over_https(env: Env, vault: Vault, secret: str) -> None:
    """A rotation's untested value: ?stage=pending is no stage for clients, ?version=N is 404."""
    vault.write("partner/rotating", b"served", actor=Operator("admin:test"))
    vault.write("partner/rotating", b"untested", actor=Operator("admin:test"), stage="pending")
    vault.policy.grant("oauth-only", "partner/*", ["read"])
    headers = {"Authorization": f"Bearer {_token(env, secret)}"}
    for query, status in (("stage=pending", 400), ("version=2", 404)):
        got, found, problem = env.request("GET", f"/v1/secrets/partner/rotating?{query}", headers)
        assert got == status, problem
        assert found["content-type"].startswith("application/problem+json")
        assert base64.b64encode(b"untested").decode() not in json.dumps(problem)


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
        # Digits str.isdigit() takes but int() does not (a superscript two) were a 500;
        # other scripts' digits (Arabic-Indic one) were read as a version.
        ("GET", "/v1/secrets/partner/k?version=%C2%B2", None, 400),
        ("GET", "/v1/secrets/partner/k?version=%D9%A1", None, 400),
        # A repeated parameter: the vault read the first, a proxy may read the last.
        ("GET", "/v1/secrets/partner/k?version=1&version=2", None, 400),
        ("GET", "/v1/secrets/partner/k?stage=current&stage=previous", None, 400),
        ("GET", "/v1/secrets?prefix=partner&prefix=erp", None, 400),
        ("GET", "/v1/secrets/partner/k?version=1&stage=current", None, 400),
        ("GET", "/v1/secrets/partner/k?stage=weird", None, 400),
        ("GET", "/v1/secrets/Partner/K", None, 400),
        # %0A: a name's trailing line break made a second secret "partner/k\n".
        ("GET", "/v1/secrets/partner/k%0A", None, 400),
        ("PUT", "/v1/secrets/partner/k%0A", b'{"value": "dw=="}', 400),
        ("PUT", "/v1/secrets/partner/k", b"not json", 400),
        ("PUT", "/v1/secrets/partner/k", b'{"value": "***"}', 400),
        ("PUT", "/v1/secrets/partner/k", b'{"value": "dg==", "extra": 1}', 400),
        ("PUT", "/v1/secrets/partner/k", b'{"value": "dg==", "cas": true}', 400),
        # The body is read as strictly as a route's (RFC 8259): nesting past the
        # stack was an unhandled RecursionError (500); a duplicate key took its last
        # value and a byte order mark was skipped where other parsers differ.
        ("PUT", "/v1/secrets/partner/k", b"[" * 100_000, 400),
        ("PUT", "/v1/secrets/partner/k", b'{"value": ' + b"[" * 100_000, 400),
        ("PUT", "/v1/secrets/partner/k", b'{"value": "dg==", "value": "dw=="}', 400),
        ("PUT", "/v1/secrets/partner/k", b'\xef\xbb\xbf{"value": "dw=="}', 400),
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
    # The request's own gateway.request entry names the client too, not "anonymous".
    (request_entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert (request_entry["actor"], request_entry["details"]["auth"]) == (
        "client:oauth-only",
        "oauth2",
    )


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


class _Authenticated:
    """Stands in for the gateway's authentication: every request is ``principal``."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    async def principal_of(self, request: object) -> Principal:
        return self.principal


def test_a_token_for_a_system_is_refused_at_the_vault(vault: Vault) -> None:
    """An access token whose audience is a system (RFC 8707), not the gateway: invalid_token.

    The harness's OAuth clients own no integration, so their default tokens are for
    the gateway itself; the vault API is driven here with a system-bound principal.
    """
    vault.write("partner/k", b"v", actor=Operator("admin:test"))
    vault.policy.grant("oauth-only", "partner/*", ["read"])
    principal = Principal(
        "oauth-only",
        frozenset({"vault.read"}),
        "jwt test",
        audiences=frozenset({"https://erp.internal"}),
        method="oauth2",
    )
    api = VaultApi(vault)
    request = make_mocked_request("GET", "/v1/secrets/partner/k")
    with pytest.raises(Refusal) as refused:
        asyncio.run(api.handle(request, _Authenticated(principal)))  # type: ignore[arg-type]
    assert refused.value.code == "unauthorized"
    assert 'error="invalid_token"' in refused.value.headers["WWW-Authenticate"]
    allowed = dataclasses.replace(principal, audiences=None, for_gateway=True)
    answer = asyncio.run(api.handle(request, _Authenticated(allowed)))  # type: ignore[arg-type]
    assert answer.status == 200


def test_a_gateway_token_without_the_vault_scope_is_refused(
    env: Env, vault: Vault, secret: str
) -> None:
    """A token for the gateway with orders.read only: 403 naming the vault's scope."""
    vault.write("partner/k", b"v", actor=Operator("admin:test"))
    vault.policy.grant("oauth-only", "partner/*", ["read", "write"])
    token = _token(env, secret, scope="orders.read")
    auth = {"Authorization": f"Bearer {token}"}
    status, _, body = env.request("GET", "/v1/secrets/partner/k", auth)
    assert (status, body["required_scope"]) == (403, "vault.read")
    reader = {"Authorization": f"Bearer {_token(env, secret, scope='vault.read')}"}
    assert env.request("GET", "/v1/secrets/partner/k", reader)[0] == 200
    put = {**reader, "Content-Type": "application/json"}
    body_bytes = json.dumps({"value": base64.b64encode(b"new").decode()}).encode()
    status, _, body = env.request("PUT", "/v1/secrets/partner/k", put, body_bytes)
    assert (status, body["required_scope"]) == (403, "vault.write")


def test_refusals_at_the_vault_are_on_the_audit_trail(env: Env, vault: Vault) -> None:
    """No credential, a bad token, or an API key: refused, and each refusal is an audit entry."""
    _, _, no_credential = env.request("GET", "/v1/secrets/partner/k")
    header = base64.urlsafe_b64encode(b'{"alg":"ES256","kid":"k"}').rstrip(b"=").decode()
    forged = {"Authorization": f"Bearer {header}.e30.c2ln"}  # signed by no key of ours
    _, _, bad_token = env.request("GET", "/v1/secrets/partner/k", forged)
    api_key, _ = env.key(["orders.read"])
    _, _, with_api_key = env.request("GET", "/v1/secrets/partner/k", {"X-API-Key": api_key})
    wanted = {
        no_credential["correlation_id"]: 401,
        bad_token["correlation_id"]: 401,
        with_api_key["correlation_id"]: 403,
    }
    # Refusals are recorded best effort (batched): wait for the writer, a few seconds at most.
    deadline = time.monotonic() + 5
    found: dict[str, Any] = {}
    while len(found) < len(wanted) and time.monotonic() < deadline:
        found = {
            e["correlation_id"]: e for e in _vault_entries(env) if e.get("correlation_id") in wanted
        }
        time.sleep(0.05)
    assert {cid: (e["outcome"]["result"], e["outcome"]["status"]) for cid, e in found.items()} == {
        cid: ("failure", status) for cid, status in wanted.items()
    }


def _vault_entries(env: Env) -> list[dict[str, Any]]:
    """The gateway.request entries about the vault API, oldest first."""
    engine = create_engine(env.deployment.settings.audit_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(BODIES.c.body).order_by(BODIES.c.idx)).all()
    finally:
        engine.dispose()
    entries: list[dict[str, Any]] = [json.loads(row.body) for row in rows]
    return [
        e
        for e in entries
        if e["action"] == "gateway.request"
        and e["details"].get("route") in {PREFIX, PREFIX + "/{name}"}
    ]


def test_a_write_the_trail_cannot_record_says_it_was_stored(env: Env) -> None:
    """The value is stored before its audit entry: a 503 must not claim nothing happened."""
    from aiohttp import streams

    sink = MemorySink()
    vault = Vault(env.deployment.engine, env.deployment.keyring, cache_seconds=0, audit=sink)
    vault.policy.grant("oauth-only", "partner/*", ["read", "write"])
    principal = Principal("oauth-only", frozenset({"vault.write"}), "jwt test", method="oauth2")
    principal = dataclasses.replace(principal, for_gateway=True)
    body = json.dumps({"value": base64.b64encode(b"new").decode()}).encode()

    async def put() -> None:
        payload = streams.StreamReader(
            cast(Any, _Protocol()), 2**16, loop=asyncio.get_running_loop()
        )
        payload.feed_data(body)
        payload.feed_eof()
        request = make_mocked_request(
            "PUT",
            "/v1/secrets/partner/k",
            headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
            payload=payload,
        )
        await VaultApi(vault).handle(request, _Authenticated(principal))  # type: ignore[arg-type]

    sink.unavailable = True
    with pytest.raises(Refusal) as refused:
        asyncio.run(put())
    assert refused.value.code == "audit-unavailable"
    assert "stored the new version" in refused.value.detail
    sink.unavailable = False
    assert vault.read("partner/k", actor=Operator("admin:test"))[0].reveal() == b"new"
    for grant in vault.policy.grants():
        vault.policy.revoke(grant.client, grant.pattern)


class _Protocol:
    """What aiohttp's StreamReader asks of its protocol while it is fed (nothing here)."""

    _reading_paused = False

    def pause_reading(self, **_: object) -> None:
        """Nothing to pause: the body is already fed."""

    def resume_reading(self, **_: object) -> None:
        """Nothing to resume: the body is already fed."""
