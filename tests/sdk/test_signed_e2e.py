"""The SDK's signed requests against the real gateway: RFC 9421 signatures the gateway accepts.

Routes with a replay policy (the harness' ``/signed/orders/{id}``) need a
signature by the caller's own key on top of its credential. Each test runs
with httpx (blocking), httpx (asyncio) and requests.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Generator

import httpx
import pytest
import requests
from joserfc.jwk import ECKey, OKPKey
from requests.auth import AuthBase

from interlock.identity.client_keys import ClientKeys
from interlock.sdk import (
    ClientCredentials,
    InterlockAuth,
    InterlockRequestsAuth,
    RequestSigner,
    SignedRequests,
    SignedRequestsAuth,
)
from interlock.testing.gateway import Env

FLAVOURS = ["httpx", "httpx-async", "requests"]
BODY = b'{"order": 1001, "note": "signed by the partner"}'


class ApiKey(httpx.Auth, AuthBase):
    """An ``X-API-Key`` header, for httpx and requests alike."""

    def __init__(self, key: str) -> None:
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        request.headers["X-API-Key"] = self.key
        yield request

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-API-Key"] = self.key
        return request


def _keys(gateway: Env) -> ClientKeys:
    deployment = gateway.deployment
    return ClientKeys(deployment.engine, deployment.keyring, gateway.gateway.gateway.manifest)


def _signer(gateway: Env, client: str, kind: str) -> RequestSigner:
    keys = _keys(gateway)
    if kind == "hmac":
        issued = keys.create_shared_secret(client)
        return RequestSigner.from_shared_secret(issued.keyid, base64.b64decode(issued.secret))
    private = (
        OKPKey.generate_key("Ed25519", private=True)
        if kind == "ed25519"
        else ECKey.generate_key("P-256", private=True)
    )
    keyid = keys.register(client, private.as_dict(private=False), use="signature")
    return RequestSigner(keyid, private.as_pem(private=True))


def _send(
    flavour: str,
    gateway: Env,
    *,
    method: str,
    path: str,
    signer: RequestSigner,
    inner_httpx: httpx.Auth,
    inner_requests: AuthBase,
    body: bytes | None = None,
) -> tuple[int, dict[str, object]]:
    url = f"https://127.0.0.1:{gateway.port}{path}"
    headers = {"Content-Type": "application/json"} if body else {}
    context = ssl.create_default_context(cafile=str(gateway.ca_file))
    if flavour == "httpx":
        with httpx.Client(auth=SignedRequests(signer, inner_httpx), verify=context) as client:
            answer = client.request(method, url, content=body, headers=headers)
        return answer.status_code, answer.json()
    if flavour == "httpx-async":

        async def call() -> httpx.Response:
            auth = SignedRequests(signer, inner_httpx)
            async with httpx.AsyncClient(auth=auth, verify=context) as client:
                return await client.request(method, url, content=body, headers=headers)

        answer = asyncio.run(call())
        return answer.status_code, answer.json()
    with requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        reply = session.request(
            method,
            url,
            data=body,
            headers=headers,
            auth=SignedRequestsAuth(signer, inner_requests),
            verify=str(gateway.ca_file),
        )
    return reply.status_code, reply.json()


@pytest.mark.parametrize("kind", ["ed25519", "p256", "hmac"])
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_signed_post_with_an_api_key_is_accepted(gateway: Env, flavour: str, kind: str) -> None:
    """Body, Content-Digest and signature as the SDK makes them pass the gateway's checks."""
    signer = _signer(gateway, "order-sync", kind)
    token, _ = gateway.key(["orders.write"])
    status, payload = _send(
        flavour,
        gateway,
        method="POST",
        path="/signed/orders/1001",
        signer=signer,
        inner_httpx=ApiKey(token),
        inner_requests=ApiKey(token),
        body=BODY,
    )
    assert status == 200, payload
    assert payload["body_bytes"] == len(BODY)
    _keys(gateway).revoke(signer.key_id, "signature")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_signed_get_with_an_oauth_token_is_accepted(
    gateway: Env, client_secret: str, flavour: str
) -> None:
    """The signature wraps the OAuth auth: token first, then a fresh signature per send."""
    signer = _signer(gateway, "oauth-only", "ed25519")
    credentials = ClientCredentials(
        f"https://127.0.0.1:{gateway.port}/oauth2/token",
        "oauth-only",
        client_secret=client_secret,
        scope="orders.read",
        verify=gateway.ca_file,
    )
    status, payload = _send(
        flavour,
        gateway,
        method="GET",
        path="/signed/orders/1001",
        signer=signer,
        inner_httpx=InterlockAuth(credentials),
        inner_requests=InterlockRequestsAuth(credentials),
    )
    assert status == 200, payload
    _keys(gateway).revoke(signer.key_id, "signature")


def test_a_request_signed_by_another_key_than_registered_is_refused(gateway: Env) -> None:
    """A key the operator never registered: 403 invalid-signature from the gateway."""
    stranger = RequestSigner("not-registered", OKPKey.generate_key("Ed25519", private=True))
    token, _ = gateway.key(["orders.write"])
    status, payload = _send(
        "httpx",
        gateway,
        method="POST",
        path="/signed/orders/1001",
        signer=stranger,
        inner_httpx=ApiKey(token),
        inner_requests=ApiKey(token),
        body=BODY,
    )
    assert status == 403
    assert payload["type"] == "urn:interlock:problem:invalid-signature"
