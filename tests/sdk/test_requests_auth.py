"""InterlockRequestsAuth with requests against the fake server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from interlock.sdk import InsecureTransportError, InterlockRequestsAuth
from tests.sdk.fake_server import FakeServer, credentials_for


@pytest.fixture
def session(server: FakeServer) -> Iterator[requests.Session]:
    """A session trusting the fake server's CA."""
    with requests.Session() as session:
        # REQUESTS_CA_BUNDLE in the environment would override session.verify.
        session.trust_env = False
        session.verify = str(server.ca_file)
        yield session


def test_request_carries_the_token_and_reuses_it(
    server: FakeServer, session: requests.Session
) -> None:
    """One fetch, the same Bearer token on every call."""
    auth = InterlockRequestsAuth(credentials_for(server))
    for _ in range(3):
        assert session.get(server.resource, auth=auth, timeout=10).status_code == 200
    assert len({seen.headers["authorization"] for seen in server.resource_requests}) == 1
    assert server.fetches == 1


def test_401_is_retried_once_with_a_fresh_token(
    server: FakeServer, session: requests.Session
) -> None:
    """A revoked token: 401, new token, the same request (body included) again, 200."""
    session.auth = InterlockRequestsAuth(credentials_for(server))
    session.get(server.resource, timeout=10)
    server.revoke_all()
    response = session.post(server.resource, data=b"payload", timeout=10)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert (
        response.request.headers["Authorization"]
        != response.history[0].request.headers["Authorization"]
    )
    assert server.fetches == 2


def test_a_persistent_401_is_retried_only_once(
    server: FakeServer, session: requests.Session
) -> None:
    """Two refusals in a row: the second 401 is returned."""
    auth = InterlockRequestsAuth(credentials_for(server))
    session.get(server.resource, auth=auth, timeout=10)
    server.revoke_all()
    server.valid = _Forgetful()
    response = session.get(server.resource, auth=auth, timeout=10)
    assert response.status_code == 401
    assert len(server.resource_requests) == 3
    assert server.fetches == 2


def test_generator_body_is_not_retried(server: FakeServer, session: requests.Session) -> None:
    """A streaming body cannot be sent twice: the 401 comes back as it is."""
    auth = InterlockRequestsAuth(credentials_for(server))
    session.get(server.resource, auth=auth, timeout=10)
    server.revoke_all()
    response = session.post(server.resource, data=iter([b"a", b"b"]), auth=auth, timeout=10)
    assert response.status_code == 401
    assert server.fetches == 1


def test_plain_http_is_refused(server: FakeServer, session: requests.Session) -> None:
    """No token over http://."""
    auth = InterlockRequestsAuth(credentials_for(server))
    with pytest.raises(InsecureTransportError):
        session.get(server.resource.replace("https://", "http://"), auth=auth, timeout=10)


def test_dpop_with_nonces(server: FakeServer, session: requests.Session) -> None:
    """DPoP through requests: nonce at the token endpoint, then at the resource; proofs verify."""
    credentials = credentials_for(server, dpop=True)
    auth = InterlockRequestsAuth(credentials)
    assert session.get(server.resource, auth=auth, timeout=10).status_code == 200
    server.require_nonces()
    response = session.get(server.resource, auth=auth, timeout=10)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert response.request.headers["Authorization"].startswith("DPoP tok-")
    assert server.fetches == 1


class _Forgetful(dict[str, str | None]):
    """A token store that never holds a token: every call is refused."""

    def __setitem__(self, key: str, value: str | None) -> None:
        """Forget at once."""
