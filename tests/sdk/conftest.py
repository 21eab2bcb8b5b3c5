"""Fixtures for the SDK tests: a fake token endpoint on real TLS, and a real gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.testing.gateway import Env, running_gateway
from tests.sdk.fake_server import FakeServer

#: Token lifetime of the SDK tests' gateway: short, so renewal happens within a test.
GATEWAY_TOKEN_LIFETIME = 5


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeServer]:
    """A fresh fake token endpoint and resource."""
    fake = FakeServer(tmp_path)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="package")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A real gateway with short-lived tokens that requires DPoP server nonces."""
    with running_gateway(
        tmp_path_factory.mktemp("sdk-gateway"),
        token_lifetime_seconds=GATEWAY_TOKEN_LIFETIME,
        dpop_nonce=True,
    ) as env:
        yield env


@pytest.fixture
def client_secret(gateway: Env) -> Iterator[str]:
    """A fresh secret for the gateway's oauth-only client (revoked afterwards)."""
    with gateway.client_secret() as value:
        yield value
