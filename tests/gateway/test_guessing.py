"""Guessing API keys or tokens at the gateway: the address's failure budget, then 429."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc.jwk import ECKey

from interlock.config.units import Rate
from interlock.errors import Refusal
from interlock.gateway.guessing import GuessingGuard
from interlock.gateway.problems import REFUSALS
from interlock.limits import Decision, FailureGuard, Limit, MemoryLimiter
from interlock.testing.gateway import Env, running_gateway
from tests.gateway.test_dpop import proof

BUDGET = 5


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A gateway whose addresses may fail five times in ten seconds."""
    with running_gateway(
        tmp_path_factory.mktemp("guessing"), auth_failures_per_ip=f"{BUDGET}/10s"
    ) as env:
        yield env


@pytest.mark.processes
def test_an_address_that_keeps_failing_gets_429_before_its_credentials_are_checked(
    strict: Env,
) -> None:
    good, _ = strict.key(["orders.read"])
    assert strict.request("GET", "/orders/1001", {"X-API-Key": good})[0] == 200
    wrong = {"X-API-Key": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")}
    statuses = [strict.request("GET", "/orders/1001", wrong)[0] for _ in range(BUDGET)]
    assert statuses == [401] * BUDGET
    status, headers, problem = strict.request("GET", "/orders/1001", wrong)
    assert status == 429
    assert problem["type"] == "urn:interlock:problem:too-many-failed-attempts"
    assert 1 <= int(headers["retry-after"]) <= 10
    # Even the right key is not checked now: the guesser cannot tell a hit from a miss.
    assert strict.request("GET", "/orders/1001", {"X-API-Key": good})[0] == 429
    # One budget per address for the whole gateway: the token endpoint slows it down too.
    raw = base64.b64encode(b"oauth-only:some-guess").decode()
    form = urlencode({"grant_type": "client_credentials"}).encode()
    status, _, body = strict.request(
        "POST",
        "/oauth2/token",
        {"Authorization": f"Basic {raw}", "Content-Type": "application/x-www-form-urlencoded"},
        form,
    )
    assert (status, body["error"]) == (429, "slow_down")


@pytest.mark.processes
def test_the_budget_refills(strict: Env) -> None:
    """GCRA: one unit back every 10/BUDGET s, so a locked-out address waits seconds."""
    good, _ = strict.key(["orders.read"])
    deadline = time.monotonic() + 30
    while strict.request("GET", "/orders/1001", {"X-API-Key": good})[0] == 429:
        assert time.monotonic() < deadline, "the budget never refilled"
        time.sleep(1)
    assert strict.request("GET", "/orders/1001", {"X-API-Key": good})[0] == 200


@pytest.mark.processes
def test_requests_without_a_credential_are_not_counted(tmp_path: Path) -> None:
    with running_gateway(tmp_path, auth_failures_per_ip="2/min") as env:
        for _ in range(6):
            assert env.request("GET", "/orders/1001")[0] == 401
        good, _ = env.key(["orders.read"])
        assert env.request("GET", "/orders/1001", {"X-API-Key": good})[0] == 200


@pytest.mark.processes
def test_dpop_nonce_challenges_are_not_counted(tmp_path: Path) -> None:
    """RFC 9449 §9: use_dpop_nonce is a protocol step, not a failed authentication.

    Clients behind one address each meet the challenge on their first request
    (and after every nonce window); with the challenges counted, they used up
    the address's budget and even correct requests got 429.
    """
    key = ECKey.generate_key("P-256", private=True)
    with running_gateway(tmp_path, dpop_nonce=True, auth_failures_per_ip="2/min") as env:
        token_url = f"https://127.0.0.1:{env.port}/oauth2/token"
        with env.client_secret() as secret:
            basic = {**Env.basic(secret), "Content-Type": "application/x-www-form-urlencoded"}
            form = urlencode({"grant_type": "client_credentials"}).encode()
            status, headers, body = env.request(
                "POST", "/oauth2/token", {**basic, "DPoP": proof(key, "POST", token_url)}, form
            )
            assert (status, body["error"]) == (400, "use_dpop_nonce")
            nonce = headers["dpop-nonce"]
            with_nonce = proof(key, "POST", token_url, nonce=nonce)
            status, _, body = env.request(
                "POST", "/oauth2/token", {**basic, "DPoP": with_nonce}, form
            )
            assert status == 200, body
            token = str(body["access_token"])
        route = f"https://127.0.0.1:{env.port}/orders/1001"

        def call(nonce: str | None) -> tuple[int, dict[str, str]]:
            extra: dict[str, Any] = {} if nonce is None else {"nonce": nonce}
            headers = {
                "Authorization": f"DPoP {token}",
                "DPoP": proof(key, "GET", route, token=token, **extra),
            }
            status, answer, _ = env.request("GET", "/orders/1001", headers, source="127.0.0.9")
            return status, answer

        for _ in range(4):  # twice the budget
            status, headers = call(None)
            assert status == 401
            assert 'error="use_dpop_nonce"' in headers["www-authenticate"]
        assert call(headers["dpop-nonce"])[0] == 200


class CountingLimiter(MemoryLimiter):
    """An in-process limiter that counts the decisions it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.decisions = 0

    def decide(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        self.decisions += 1
        return super().decide(limits, consume=consume)


def test_addresses_that_never_failed_cost_no_limiter_decision() -> None:
    """The shared budget (a Redis round trip with replicas) is asked only about recent failers."""
    limiter = CountingLimiter()
    guard = GuessingGuard(FailureGuard(limiter, per_address=Rate(3, timedelta(minutes=1))))

    async def scenario() -> None:
        for _ in range(100):
            await guard.check("192.0.2.1")
        assert limiter.decisions == 0
        for _ in range(3):
            await guard.failed("198.51.100.7")
        assert limiter.decisions == 3
        with pytest.raises(Refusal) as refused:
            await guard.check("198.51.100.7")
        assert REFUSALS[refused.value.code].status == 429
        await guard.check("192.0.2.1")  # still free for everyone else
        assert limiter.decisions == 4

    asyncio.run(scenario())


def test_a_suspect_is_forgotten_after_a_while() -> None:
    limiter = CountingLimiter()
    guard = GuessingGuard(FailureGuard(limiter), remember_seconds=0.05)

    async def scenario() -> None:
        await guard.failed("198.51.100.7")
        await guard.check("198.51.100.7")
        asked = limiter.decisions
        await asyncio.sleep(0.1)
        await guard.check("198.51.100.7")
        assert limiter.decisions == asked

    asyncio.run(scenario())
