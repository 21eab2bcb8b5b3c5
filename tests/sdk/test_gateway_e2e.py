"""The SDK against the real gateway over real TLS: tokens, renewal, 401 retry, DPoP.

The gateway issues 5-second tokens and requires DPoP server nonces. Each test
runs with httpx (blocking), httpx (asyncio) and requests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import requests
from joserfc.jwk import ECKey, OKPKey

from interlock.identity.client_keys import ClientKeys
from interlock.sdk import ClientCredentials, InterlockAuth, InterlockRequestsAuth, TokenRequestError
from interlock.sdk.rfc7523 import ClientKey
from interlock.testing.gateway import Env
from tests.sdk.conftest import GATEWAY_TOKEN_LIFETIME
from tests.sdk.fake_server import Clock

FLAVOURS = ["httpx", "httpx-async", "requests"]


def _credentials(gateway: Env, secret: str, **options: Any) -> ClientCredentials:
    return ClientCredentials(
        f"https://127.0.0.1:{gateway.port}/oauth2/token",
        "oauth-only",
        client_secret=secret,
        scope="orders.read",
        verify=gateway.ca_file,
        **options,
    )


def _get(flavour: str, gateway: Env, credentials: ClientCredentials) -> tuple[int, str, list[int]]:
    """GET /orders/1001: status, the Authorization header finally sent, statuses refused before."""
    url = f"https://127.0.0.1:{gateway.port}/orders/1001"
    context = ssl.create_default_context(cafile=str(gateway.ca_file))
    if flavour == "httpx":
        with httpx.Client(auth=InterlockAuth(credentials), verify=context) as client:
            answer = client.get(url)
    elif flavour == "httpx-async":

        async def call() -> httpx.Response:
            auth = InterlockAuth(credentials)
            async with httpx.AsyncClient(auth=auth, verify=context) as client:
                return await client.get(url)

        answer = asyncio.run(call())
    else:
        with requests.Session() as session:
            session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
            reply = session.get(
                url,
                auth=InterlockRequestsAuth(credentials),
                verify=str(gateway.ca_file),
                timeout=10,
            )
        if reply.status_code == 200:
            assert reply.json()["id"] == "1001"
        history = [r.status_code for r in reply.history]
        return reply.status_code, str(reply.request.headers["Authorization"]), history
    if answer.status_code == 200:
        assert answer.json()["id"] == "1001"
    history = [r.status_code for r in answer.history]
    return answer.status_code, answer.request.headers["Authorization"], history


def _claims(authorization: str) -> dict[str, Any]:
    payload = authorization.split(" ", 1)[1].split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return claims


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_token_opens_the_route_and_is_renewed_before_it_expires(
    gateway: Env, client_secret: str, flavour: str
) -> None:
    """A secret gets a token for orders.read; a second token is fetched before the first expires."""
    credentials = _credentials(gateway, client_secret, refresh_margin=GATEWAY_TOKEN_LIFETIME - 1)
    status, first, _ = _get(flavour, gateway, credentials)
    assert status == 200
    assert first.startswith("Bearer ")
    gateway.issued_tokens.append(first.split(" ", 1)[1])
    claims = _claims(first)
    assert claims["client_id"] == "oauth-only"
    assert claims["exp"] - claims["iat"] == GATEWAY_TOKEN_LIFETIME
    # Renewal is due one second after the fetch, about four before the token expires.
    due = credentials.token().refresh_at
    time.sleep(max(0.0, due - time.time()) + 0.05)
    status, second, history = _get(flavour, gateway, credentials)
    renewed_by = time.time()
    gateway.issued_tokens.append(second.split(" ", 1)[1])
    assert (status, history) == (200, [])
    assert second != first
    assert renewed_by < claims["exp"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_revoked_token_is_replaced_after_one_401(
    gateway: Env, client_secret: str, flavour: str
) -> None:
    """Revoked at the gateway (RFC 7009): one 401, a fresh token, the request again, 200."""
    # A stopped clock: the SDK never renews on its own, so only the 401 can make it.
    credentials = _credentials(gateway, client_secret, clock=Clock(time.time()))
    status, first, _ = _get(flavour, gateway, credentials)
    assert status == 200
    token = first.split(" ", 1)[1]
    gateway.issued_tokens.append(token)
    basic = base64.b64encode(f"oauth-only:{client_secret}".encode()).decode()
    status, _, _ = gateway.request(
        "POST",
        "/oauth2/revoke",
        {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"},
        urlencode({"token": token}).encode(),
    )
    assert status == 200
    status, second, history = _get(flavour, gateway, credentials)
    gateway.issued_tokens.append(second.split(" ", 1)[1])
    assert (status, history) == (200, [401])
    assert second != first


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_dpop_bound_token_with_server_nonces(
    gateway: Env, client_secret: str, flavour: str
) -> None:
    """DPoP: the gateway wants nonces; the token is bound to our key; every call has a new proof."""
    credentials = _credentials(gateway, client_secret, dpop=True)
    for _ in range(2):
        status, authorization, _ = _get(flavour, gateway, credentials)
        assert status == 200
    assert authorization.startswith("DPoP ")
    gateway.issued_tokens.append(authorization.split(" ", 1)[1])
    assert credentials.dpop is not None
    assert _claims(authorization)["cnf"] == {"jkt": credentials.dpop.thumbprint}


def test_wrong_secret_is_invalid_client_without_the_secret(
    gateway: Env, client_secret: str
) -> None:
    """The gateway's refusal surfaces as error=invalid_client; the secret is not in the error."""
    wrong = client_secret[:-4] + ("AAAA" if not client_secret.endswith("AAAA") else "BBBB")
    with pytest.raises(TokenRequestError) as caught:
        _get("httpx", gateway, _credentials(gateway, wrong))
    assert (caught.value.error, caught.value.status) == ("invalid_client", 401)
    assert wrong not in str(caught.value)
    assert client_secret[:-4] not in str(caught.value)


def test_scope_beyond_the_grant_is_invalid_scope(gateway: Env, client_secret: str) -> None:
    """orders.write is not granted to oauth-only: error=invalid_scope."""
    credentials = _credentials(gateway, client_secret)
    with pytest.raises(TokenRequestError) as caught:
        credentials.token(credentials.key("orders.write"))
    assert caught.value.error == "invalid_scope"


@pytest.mark.parametrize(
    ("key", "flavour"),
    [
        (ECKey.generate_key("P-256", private=True), "httpx"),
        (OKPKey.generate_key("Ed25519", private=True, auto_kid=False), "httpx-async"),
    ],
    ids=["ES256-with-kid", "Ed25519-without-kid"],
)
def test_private_key_jwt_gets_a_token(gateway: Env, key: ClientKey, flavour: str) -> None:
    """private_key_jwt with a registered public key (RFC 7523), with and without a kid."""
    keys = ClientKeys(
        gateway.deployment.engine, gateway.deployment.keyring, gateway.gateway.gateway.manifest
    )
    kid = keys.register("oauth-only", key.as_dict(private=False), use="assertion")
    try:
        credentials = ClientCredentials(
            f"https://127.0.0.1:{gateway.port}/oauth2/token",
            "oauth-only",
            private_key=key,
            verify=gateway.ca_file,
            dpop=flavour == "httpx-async",
        )
        status, authorization, _ = _get(flavour, gateway, credentials)
        gateway.issued_tokens.append(authorization.split(" ", 1)[1])
        assert status == 200
        assert _claims(authorization)["client_id"] == "oauth-only"
    finally:
        keys.revoke(kid, "assertion")
