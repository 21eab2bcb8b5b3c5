"""RFC 8707 resource indicators: audience-restricted tokens, checked per route."""

from __future__ import annotations

import asyncio
import base64
import json
from types import SimpleNamespace
from typing import Any, cast

import pytest

from interlock.errors import Refusal
from interlock.gateway.context import RequestContext
from interlock.gateway.stages.authorise import ScopeCheck
from interlock.oauth.token_endpoint import TokenEndpoint
from interlock.oauth.tokens import AccessTokenVerifier
from tests.oauth.conftest import ISSUER, OAuthKit, answer

CALLERS = frozenset({"order-sync"})
ERP = "https://erp.internal.example:9443"
CRM = "https://example.my.crm-cloud.com"
WAREHOUSE = "https://ingest.warehouse.example.nl"


@pytest.fixture
def setup(kit: OAuthKit) -> tuple[TokenEndpoint, AccessTokenVerifier, str]:
    """The example manifest's token endpoint and verifier, and a secret for order-sync."""
    _, secret = kit.secrets.create("order-sync")
    return kit.endpoint(), kit.verifier, secret


def _token(endpoint: TokenEndpoint, secret: str, *resources: str) -> tuple[int, dict[str, Any]]:
    basic = "Basic " + base64.b64encode(f"order-sync:{secret}".encode()).decode()
    form: dict[str, list[str]] = {"grant_type": ["client_credentials"]}
    if resources:
        form["resource"] = list(resources)
    answered = answer(lambda: endpoint.handle([basic], form))
    return answered.status, answered.body


def _aud(token: str) -> object:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["aud"]


def test_default_audience_is_the_systems_the_clients_routes_reach(
    setup: tuple[TokenEndpoint, AccessTokenVerifier, str],
) -> None:
    """No resource: the token is for the ERP and the CRM (order-sync's routes), not the warehouse."""
    endpoint, verifier, secret = setup
    status, body = _token(endpoint, secret)
    assert status == 200, body
    assert _aud(body["access_token"]) == sorted([CRM, ERP])
    assert verifier.verify(body["access_token"]).audiences == frozenset({CRM, ERP})


def test_one_resource_narrows_the_token(
    setup: tuple[TokenEndpoint, AccessTokenVerifier, str],
) -> None:
    """resource=ERP: a token for the ERP only, refused on a CRM route."""
    endpoint, verifier, secret = setup
    status, body = _token(endpoint, secret, ERP + "/")
    assert status == 200, body
    assert _aud(body["access_token"]) == ERP
    principal = verifier.verify(body["access_token"])
    assert principal.audiences == frozenset({ERP})
    ctx = cast(RequestContext, SimpleNamespace(principal=principal))
    asyncio.run(ScopeCheck("orders.read", ERP, callers=CALLERS)(ctx))
    with pytest.raises(Refusal) as refused:
        asyncio.run(ScopeCheck("crm.accounts.write", CRM, callers=CALLERS)(ctx))
    assert refused.value.code == "unauthorized"


def test_the_gateway_as_resource_is_unrestricted(
    setup: tuple[TokenEndpoint, AccessTokenVerifier, str],
) -> None:
    """resource=issuer: a gateway-wide token."""
    endpoint, verifier, secret = setup
    status, body = _token(endpoint, secret, ISSUER)
    assert status == 200
    assert verifier.verify(body["access_token"]).audiences is None


@pytest.mark.parametrize("resource", [WAREHOUSE, "https://evil.example", "urn:x"])
def test_a_resource_the_client_does_not_reach_is_invalid_target(
    setup: tuple[TokenEndpoint, AccessTokenVerifier, str], resource: str
) -> None:
    """RFC 8707 §2: invalid_target, no token."""
    endpoint, _, secret = setup
    status, body = _token(endpoint, secret, ERP, resource)
    assert (status, body["error"]) == (400, "invalid_target")
