"""InterlockAuth with httpx.Client and httpx.AsyncClient against the fake server."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator

import httpx
import pytest

from interlock.sdk import InsecureTransportError, InterlockAuth
from tests.sdk.fake_server import FakeServer, credentials_for


def _context(server: FakeServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.ca_file))


def _client(server: FakeServer, **options: object) -> httpx.Client:
    auth = InterlockAuth(credentials_for(server, **options))
    return httpx.Client(auth=auth, verify=_context(server))


def test_request_carries_the_bearer_token(server: FakeServer) -> None:
    """The token is fetched once and sent on every request."""
    with _client(server) as client:
        for _ in range(3):
            response = client.get(server.resource)
            assert response.status_code == 200
    tokens = {seen.headers["authorization"] for seen in server.resource_requests}
    assert len(tokens) == 1
    assert tokens.pop().startswith("Bearer tok-")
    assert server.fetches == 1


def test_401_is_retried_once_with_a_fresh_token(server: FakeServer) -> None:
    """A revoked token: one 401, a new token, the same request again, 200."""
    with _client(server) as client:
        assert client.get(server.resource).status_code == 200
        server.revoke_all()
        response = client.post(server.resource, content=b"payload")
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert server.fetches == 2
    first, refused, retried = server.resource_requests
    assert refused.headers["authorization"] == first.headers["authorization"]
    assert retried.headers["authorization"] != refused.headers["authorization"]


def test_a_persistent_401_is_retried_only_once(server: FakeServer) -> None:
    """If the fresh token is refused too, the 401 is returned (two calls, two fetches)."""
    server.valid = _Forgetful()
    with _client(server) as client:
        response = client.get(server.resource)
    assert response.status_code == 401
    assert len(server.resource_requests) == 2
    assert server.fetches == 2


def test_streaming_body_is_not_retried(server: FakeServer) -> None:
    """A generator body cannot be sent twice: the 401 comes back as it is."""

    def body() -> Iterator[bytes]:
        yield b"chunk"

    with _client(server) as client:
        client.get(server.resource)
        server.revoke_all()
        response = client.post(server.resource, content=body())
    assert response.status_code == 401
    assert server.fetches == 1


def test_concurrent_401s_share_one_renewal(server: FakeServer) -> None:
    """Twenty threads refused at once: the token is renewed once, all retries succeed."""
    server.token_delay = 0.2
    barrier = threading.Barrier(20)
    statuses: list[int] = []
    with _client(server) as client:
        client.get(server.resource)
        server.revoke_all()

        def call() -> None:
            barrier.wait()
            statuses.append(client.get(server.resource).status_code)

        threads = [threading.Thread(target=call) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert statuses == [200] * 20
    assert server.fetches == 2


def test_plain_http_is_refused(server: FakeServer) -> None:
    """The token is never sent over http://."""
    with _client(server) as client, pytest.raises(InsecureTransportError):
        client.get(server.resource.replace("https://", "http://"))
    assert server.fetches == 1  # fetched over TLS; just never sent in clear


def test_async_client_retries_with_a_fresh_token(server: FakeServer) -> None:
    """httpx.AsyncClient: same behaviour, token fetches awaited."""
    credentials = credentials_for(server)

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(
            auth=InterlockAuth(credentials), verify=_context(server)
        ) as client:
            responses = await asyncio.gather(*(client.get(server.resource) for _ in range(10)))
            assert {r.status_code for r in responses} == {200}
            server.revoke_all()
            return await client.get(server.resource)

    response = asyncio.run(main())
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert server.fetches == 2


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_dpop_requests_with_server_nonces(server: FakeServer, flavour: str) -> None:
    """DPoP: bound token, proof per request verified by Interlock's verifier, nonce retry."""
    server.require_nonces()
    credentials = credentials_for(server, dpop=True)
    auth = InterlockAuth(credentials)

    async def run_async() -> list[int]:
        async with httpx.AsyncClient(auth=auth, verify=_context(server)) as client:
            return [(await client.get(server.resource)).status_code for _ in range(3)]

    if flavour == "sync":
        with httpx.Client(auth=auth, verify=_context(server)) as client:
            statuses = [client.get(server.resource).status_code for _ in range(3)]
    else:
        statuses = asyncio.run(run_async())
    assert statuses == [200, 200, 200]
    assert server.fetches == 2  # the first token request met use_dpop_nonce
    for seen in server.resource_requests:
        assert seen.headers["authorization"].startswith("DPoP tok-")
    proofs = {seen.headers["dpop"] for seen in server.resource_requests}
    assert len(proofs) == len(server.resource_requests)


def test_dpop_nonce_rotation_at_the_resource_is_retried_once(server: FakeServer) -> None:
    """A resource answering 401 use_dpop_nonce gets the same request once more, with the nonce."""
    credentials = credentials_for(server, dpop=True)
    with httpx.Client(auth=InterlockAuth(credentials), verify=_context(server)) as client:
        assert client.get(server.resource).status_code == 200
        server.require_nonces()  # the resource now wants a nonce it has not handed out
        response = client.get(server.resource)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert server.fetches == 1  # the token stayed valid: no renewal for a nonce


class _Forgetful(dict[str, str | None]):
    """A token store that never holds a token: every call is refused."""

    def __setitem__(self, key: str, value: str | None) -> None:
        """Forget at once."""
