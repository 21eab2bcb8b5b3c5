"""The token cache: reuse, renewal before expiry, one renewal in flight, clear errors."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest

from interlock.sdk import TokenRequestError
from tests.sdk.fake_server import SECRET, Clock, FakeServer, credentials_for


def test_token_is_fetched_once_and_reused(server: FakeServer) -> None:
    """A second call within the token's life is answered from the cache."""
    credentials = credentials_for(server)
    first = credentials.token()
    assert credentials.token() == first
    assert server.fetches == 1
    assert first.token_type == "Bearer"
    assert first.value in server.valid


def test_token_is_renewed_before_it_expires(server: FakeServer) -> None:
    """Default margin min(30 s, 10 %): a 100 s token is renewed after 90 s, not after 89 s."""
    clock = Clock()
    server.expires_in = 100
    credentials = credentials_for(server, clock=clock)
    first = credentials.token()
    assert (first.expires_at, first.refresh_at) == (clock.now + 100, clock.now + 90)
    clock.now += 89
    assert credentials.token() == first
    clock.now += 1.5
    second = credentials.token()
    assert second != first
    assert server.fetches == 2
    assert clock.now < first.expires_at


def test_long_lived_token_margin_is_capped_at_30_seconds(server: FakeServer) -> None:
    """For a one-hour token the margin is 30 s, not 6 minutes."""
    clock = Clock()
    server.expires_in = 3600
    token = credentials_for(server, clock=clock).token()
    assert token.expires_at - token.refresh_at == 30


def test_explicit_refresh_margin_is_used(server: FakeServer) -> None:
    """refresh_margin overrides the default."""
    clock = Clock()
    server.expires_in = 100
    token = credentials_for(server, clock=clock, refresh_margin=70).token()
    assert token.refresh_at == clock.now + 30


def test_missing_expires_in_means_a_short_life(server: FakeServer) -> None:
    """Without expires_in (only RECOMMENDED by RFC 6749) the token is assumed to live 5 minutes."""
    clock = Clock()
    server.token_answer = (200, b'{"access_token": "abc", "token_type": "bearer"}')
    token = credentials_for(server, clock=clock).token()
    assert (token.value, token.token_type, token.expires_at) == ("abc", "Bearer", clock.now + 300)


def test_one_fetch_for_twenty_threads(server: FakeServer) -> None:
    """Twenty threads asking at once wait for one token request and share its token."""
    server.token_delay = 0.3
    credentials = credentials_for(server)
    barrier = threading.Barrier(20)
    tokens: list[str] = []

    def ask() -> None:
        barrier.wait()
        tokens.append(credentials.token().value)

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(tokens) == 20
    assert len(set(tokens)) == 1
    assert server.fetches == 1


def test_one_fetch_for_twenty_tasks(server: FakeServer) -> None:
    """Twenty coroutines asking at once wait for one token request."""
    server.token_delay = 0.3
    credentials = credentials_for(server)

    async def main() -> list[str]:
        tokens = await asyncio.gather(*(credentials.atoken() for _ in range(20)))
        return [token.value for token in tokens]

    tokens = asyncio.run(main())
    assert len(set(tokens)) == 1
    assert server.fetches == 1


def test_the_cache_serves_several_event_loops(server: FakeServer) -> None:
    """A token fetched in one asyncio.run is reused (and renewable) in the next."""
    clock = Clock()
    server.expires_in = 100
    credentials = credentials_for(server, clock=clock)
    first = asyncio.run(credentials.atoken())
    assert asyncio.run(credentials.atoken()) == first
    clock.now += 95
    assert asyncio.run(credentials.atoken()) != first
    assert server.fetches == 2


def test_tokens_are_cached_per_scope_and_resource(server: FakeServer) -> None:
    """Each (scope, resource) has its own token; the request carries them."""
    credentials = credentials_for(server, scope="a")
    credentials.token()
    credentials.token(credentials.key("b"))
    credentials.token(credentials.key(resource="https://r.example"))
    credentials.token(credentials.key("a"))
    forms = [seen.form for seen in server.token_requests]
    assert forms == [
        {"grant_type": "client_credentials", "scope": "a"},
        {"grant_type": "client_credentials", "scope": "b"},
        {"grant_type": "client_credentials", "scope": "a", "resource": "https://r.example"},
    ]


def test_basic_and_post_authentication(server: FakeServer) -> None:
    """client_secret_basic puts the secret in the header, client_secret_post in the form."""
    credentials_for(server).token()
    credentials_for(server, auth_method="client_secret_post").token()
    basic, post = server.token_requests
    assert basic.headers["authorization"].startswith("Basic ")
    assert "client_secret" not in basic.form
    assert post.form["client_secret"] == SECRET
    assert "authorization" not in post.headers


def test_refusal_carries_the_rfc_6749_code_but_not_the_secret(server: FakeServer) -> None:
    """A wrong secret: TokenRequestError with error=invalid_client; the secret is nowhere."""
    credentials = credentials_for(server, client_secret="wrong-" + SECRET)
    with pytest.raises(TokenRequestError) as caught:
        credentials.token()
    assert (caught.value.error, caught.value.status) == ("invalid_client", 401)
    assert caught.value.code == "token_request_failed"
    assert "wrong-" not in str(caught.value) + repr(caught.value.args)


def test_a_secret_echoed_by_the_server_is_masked(server: FakeServer) -> None:
    """Even a server that echoes the secret back cannot put it into our exception."""
    body = {"error": "invalid_request", "error_description": f"bad secret {SECRET}\n!"}
    server.token_answer = (400, json.dumps(body).encode())
    with pytest.raises(TokenRequestError) as caught:
        credentials_for(server).token()
    assert caught.value.error == "invalid_request"
    assert SECRET not in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ((500, b"<html>oops</html>"), "server_error"),
        ((200, b"not json"), "invalid_response"),
        ((200, b'{"token_type": "Bearer"}'), "invalid_response"),
        ((200, b'{"access_token": "a", "token_type": "mac"}'), "invalid_response"),
        (
            (200, b'{"access_token": "a", "token_type": "Bearer", "expires_in": -1}'),
            "invalid_response",
        ),
        (
            (200, b'{"access_token": "a", "token_type": "Bearer", "expires_in": true}'),
            "invalid_response",
        ),
        ((200, b'{"access_token": "' + b"a" * 70_000 + b'"}'), "invalid_response"),
    ],
)
def test_unusable_answers_are_refused(
    server: FakeServer, answer: tuple[int, bytes], error: str
) -> None:
    """Server errors, non-JSON, missing or odd fields, oversized bodies: a clear error code."""
    server.token_answer = answer
    with pytest.raises(TokenRequestError) as caught:
        credentials_for(server).token()
    assert caught.value.error == error


def test_unreachable_token_endpoint_is_a_network_error(server: FakeServer) -> None:
    """Connection refused: error=network_error, no status."""
    credentials = credentials_for(server)
    server.close()
    with pytest.raises(TokenRequestError) as caught:
        credentials.token()
    assert (caught.value.error, caught.value.status) == ("network_error", None)


def test_untrusted_certificate_is_a_network_error(server: FakeServer) -> None:
    """The system trust store does not know the test CA: the TLS handshake fails."""
    credentials = credentials_for(server, verify=None)
    with pytest.raises(TokenRequestError, match="network_error"):
        credentials.token()
    assert server.fetches == 0


def test_logs_carry_neither_secret_nor_token(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Everything logged at DEBUG during a fetch is free of the secret and the token."""
    with caplog.at_level(logging.DEBUG):
        token = credentials_for(server).token()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "access token obtained" in text
    assert SECRET not in text
    assert token.value not in text
