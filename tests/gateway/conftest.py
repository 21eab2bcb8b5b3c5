"""The running gateway shared by the gateway tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from interlock.logs import configure_logging
from interlock.testing.gateway import Env, running_gateway


@pytest.fixture(scope="package")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One deployment, two upstream processes and a gateway for all gateway tests."""
    with running_gateway(tmp_path_factory.mktemp("gateway")) as env:
        yield env


@pytest.fixture(autouse=True)
def _logs_into_env(request: pytest.FixtureRequest) -> None:
    """A test of the shared gateway reads its log lines from ``env.logs``.

    Every gateway a test module starts points logging at a stream of its own,
    so after one has run the shared gateway's lines would go there: point them
    back before each test that uses ``env``, whatever ran before it.
    """
    if "env" in request.fixturenames:
        configure_logging("debug", "json", request.getfixturevalue("env").logs)


@pytest.fixture
def secret(env: Env) -> Iterator[str]:
    """A fresh secret for the oauth-only client (revoked afterwards)."""
    with env.client_secret() as value:
        yield value
