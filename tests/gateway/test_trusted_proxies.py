"""Behind a trusted load balancer each caller has its own address: budget, limits, audit trail.

The test client (127.0.0.1) plays the balancer. Audit entries keep addresses in
clear here (INTERLOCK_AUDIT_PSEUDONYMISE_IP=false) so the tests can read them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.testing.gateway import Env, running_gateway

BUDGET = 3
CALLER = "198.51.100.7"


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A gateway behind a balancer at 127.0.0.1/32, with a small failure budget per address."""
    with running_gateway(
        tmp_path_factory.mktemp("balanced"),
        trusted_proxies="127.0.0.1/32",
        auth_failures_per_ip=f"{BUDGET}/min",
        audit_pseudonymise_ip=False,
    ) as env:
        yield env


def _wrong(env: Env) -> dict[str, str]:
    good, _ = env.key(["orders.read"])
    return {"X-API-Key": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")}


def _audited_address(env: Env, correlation_id: str) -> str | None:
    """The client address on the first audit entry of ``correlation_id``."""
    entries = env.audit_entries(correlation_id)
    assert entries, f"no audit entry for {correlation_id}"
    address: str | None = entries[0]["client_ip"]
    return address


@pytest.mark.processes
def test_the_audit_entry_records_the_caller_the_balancer_reports(balanced: Env) -> None:
    good, _ = balanced.key(["orders.read"])
    headers = {"X-API-Key": good, "X-Forwarded-For": CALLER}
    status, answer, _ = balanced.request("GET", "/echo/hello", headers)
    assert status == 200
    assert _audited_address(balanced, answer["x-request-id"]) == CALLER


@pytest.mark.processes
def test_the_upstream_is_told_the_caller_not_the_balancer(balanced: Env) -> None:
    good, _ = balanced.key(["orders.read"])
    headers = {"X-API-Key": good, "X-Forwarded-For": "6.6.6.6, 2001:db8::7"}
    status, _, body = balanced.request("GET", "/echo/hello", headers)
    assert status == 200
    forwarded = {k.lower(): v for k, v in body["headers"].items()}
    assert forwarded["forwarded"].startswith('for="[2001:db8::7]";')
    assert "x-forwarded-for" not in forwarded


@pytest.mark.processes
def test_each_caller_behind_the_balancer_has_its_own_failure_budget(balanced: Env) -> None:
    """One guesser behind the balancer is stopped; the others behind it are not."""
    wrong, guesser = _wrong(balanced), {"X-Forwarded-For": "198.51.100.66"}
    for _ in range(BUDGET):
        assert balanced.request("GET", "/orders/1001", wrong | guesser)[0] == 401
    status, answer, problem = balanced.request("GET", "/orders/1001", wrong | guesser)
    assert status == 429, problem
    assert _audited_address(balanced, answer["x-request-id"]) == "198.51.100.66"
    good, _ = balanced.key(["orders.read"])
    honest = {"X-API-Key": good, "X-Forwarded-For": CALLER}
    assert balanced.request("GET", "/orders/1001", honest)[0] == 200


@pytest.mark.processes
def test_a_peer_outside_the_trusted_networks_cannot_pick_its_address(balanced: Env) -> None:
    """127.0.0.2 is loopback but not the balancer: its header is its own word, ignored."""
    good, _ = balanced.key(["orders.read"])
    headers = {"X-API-Key": good, "X-Forwarded-For": CALLER}
    status, answer, _ = balanced.request("GET", "/echo/hello", headers, source="127.0.0.2")
    assert status == 200
    assert _audited_address(balanced, answer["x-request-id"]) == "127.0.0.2"


@pytest.mark.processes
def test_a_malformed_header_from_the_balancer_is_refused_and_nothing_is_forwarded(
    balanced: Env,
) -> None:
    good, _ = balanced.key(["orders.read"])
    headers = {"X-API-Key": good, "X-Forwarded-For": "198.51.100.7, not-an-address"}
    status, answer, problem = balanced.request("POST", "/orders/1001/notes", headers, b"{}")
    assert status == 400
    assert answer["content-type"] == "application/problem+json"
    assert problem["type"] == "urn:interlock:problem:malformed-forwarding-header"
    assert "not-an-address" not in json.dumps(problem)
    # On the trail once, under the one address known: the balancer's.
    assert _audited_address(balanced, answer["x-request-id"]) == "127.0.0.1"


@pytest.mark.processes
def test_without_trusted_proxies_the_header_is_ignored(tmp_path: Path) -> None:
    """The default trusts nobody: a caller's X-Forwarded-For changes neither budget nor trail."""
    with running_gateway(
        tmp_path, auth_failures_per_ip=f"{BUDGET}/min", audit_pseudonymise_ip=False
    ) as env:
        wrong = _wrong(env)
        for number in range(BUDGET):
            spoofed = {"X-Forwarded-For": f"198.51.100.{number + 1}"}
            assert env.request("GET", "/orders/1001", wrong | spoofed)[0] == 401
        good, _ = env.key(["orders.read"])
        headers = {"X-API-Key": good, "X-Forwarded-For": CALLER}
        status, answer, _ = env.request("GET", "/orders/1001", headers)
        assert status == 429  # the budget of 127.0.0.1, the only peer there is
        assert _audited_address(env, answer["x-request-id"]) == "127.0.0.1"
