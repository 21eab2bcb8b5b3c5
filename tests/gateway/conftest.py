"""The running gateway shared by the gateway tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from tests.gateway.harness import Env, start, stop


@pytest.fixture(scope="package")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One deployment, two upstream processes and a gateway for all gateway tests."""
    running = start(tmp_path_factory.mktemp("gateway"))
    try:
        yield running.env
    finally:
        stop(running)
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()


@pytest.fixture
def secret(env: Env) -> Iterator[str]:
    """A fresh secret for the oauth-only client (revoked afterwards)."""
    with env.client_secret() as value:
        yield value
