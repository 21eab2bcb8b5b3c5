"""The own endpoints' table and the listener's front: order, methods, prefixes, 503 at start."""

from __future__ import annotations

import asyncio
import json
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from interlock.gateway.endpoints import Endpoints, Health, Mount, OAuthForm
from interlock.gateway.server import Front


class Named:
    """An endpoint that says its name."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        return web.Response(text=self.name)


def test_the_first_matching_mount_answers_and_methods_filter() -> None:
    """Exact paths, prefixes only on a boundary, and a method not mounted falls through."""
    table = Endpoints(
        [
            Mount("/healthz", Health(), frozenset({"GET", "HEAD"})),
            Mount("/v1/secrets", Named("vault"), prefix=True),
            Mount("/v1/secrets/special", Named("never reached")),
        ]
    )
    assert table.paths == ("/healthz", "/v1/secrets", "/v1/secrets/special")
    assert table.find("/healthz", "GET") is not None
    assert table.find("/healthz", "POST") is None  # goes on to the routes
    found = table.find("/v1/secrets/special", "PUT")
    assert found is not None
    assert found.path == "/v1/secrets"
    assert table.find("/v1/secretsX", "GET") is None
    assert table.find("/v1/secrets", "GET") is not None


def test_the_front_answers_503_until_a_gateway_is_assembled() -> None:
    """Between binding the socket and assembling the gateway: a problem, never a hang."""
    response = asyncio.run(Front().handle(make_mocked_request("GET", "/orders")))
    assert isinstance(response, web.Response)
    body = json.loads(response.body)  # type: ignore[arg-type]
    assert (response.status, body["type"]) == (503, "urn:interlock:problem:service-starting")
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize("operation", ["handle", "handle_now", "issuer", ""])
def test_an_oauth_form_names_one_of_the_three_oauth_endpoints(operation: str) -> None:
    """Token, revoke or introspect: any other name is refused when mounted, not looked up
    on the token endpoint by name at request time (``getattr``)."""
    with pytest.raises(ValueError, match="no OAuth endpoint"):
        OAuthForm(mock.Mock(), operation, mock.Mock(), mock.Mock())  # type: ignore[arg-type]
    for known in ("token", "revoke", "introspect"):
        assert OAuthForm(mock.Mock(), known, mock.Mock(), mock.Mock()).operation == known
