"""The failure budgets never lock a client out from somewhere else (issue 17 item 6).

Failed client authentications are counted per (client id, source address)
and per source address. Anyone may fail for a client id as often as they
like: only *their* address slows down; the client, calling from its own
address, is never refused because of them.
"""

from __future__ import annotations

from interlock.limits import ADDRESS_FAILURES, CLIENT_FAILURES, FailureGuard, MemoryLimiter
from interlock.testing.clock import ManualClock

ATTACKER, CLIENT_HOST = "198.51.100.66", "192.0.2.10"


def test_failures_for_a_client_id_elsewhere_never_slow_the_client_down() -> None:
    """Ten and more wrong secrets for ``erp`` from one address: ``erp`` at home is not touched."""
    guard = FailureGuard(MemoryLimiter(clock=ManualClock().monotonic_us))
    for _ in range(CLIENT_FAILURES.limit * 3):
        guard.failed("erp", ATTACKER)
    assert guard.retry_after("erp", ATTACKER) is not None  # the guesser is slowed down
    assert guard.retry_after("erp", CLIENT_HOST) is None  # the client is not


def test_one_address_guessing_across_many_client_ids_is_still_slowed_down() -> None:
    """The per-address budget stays: 50 client ids, one failure each, then every id waits."""
    guard = FailureGuard(MemoryLimiter(clock=ManualClock().monotonic_us))
    for n in range(ADDRESS_FAILURES.limit):
        guard.failed(f"client-{n}", ATTACKER)
    assert guard.retry_after("client-new", ATTACKER) is not None
    assert guard.retry_after("client-new", CLIENT_HOST) is None


def test_a_client_failing_from_its_own_address_is_slowed_after_its_budget() -> None:
    """The (client, address) budget: ten failures a minute, then that pair waits."""
    guard = FailureGuard(MemoryLimiter(clock=ManualClock().monotonic_us))
    for _ in range(CLIENT_FAILURES.limit):
        assert guard.retry_after("erp", CLIENT_HOST) is None
        guard.failed("erp", CLIENT_HOST)
    assert guard.retry_after("erp", CLIENT_HOST) is not None
    assert guard.retry_after("crm", CLIENT_HOST) is None  # another client from there is not
