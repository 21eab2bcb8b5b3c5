"""The running gateway shared by the gateway tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from interlock.testing.gateway import Env, running_gateway


@pytest.fixture(scope="package")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One deployment, two upstream processes and a gateway for all gateway tests."""
    with running_gateway(tmp_path_factory.mktemp("gateway")) as env:
        yield env


@pytest.fixture
def secret(env: Env) -> Iterator[str]:
    """A fresh secret for the oauth-only client (revoked afterwards)."""
    with env.client_secret() as value:
        yield value
