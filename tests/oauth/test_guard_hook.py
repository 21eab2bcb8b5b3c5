"""The rate-limit hook: consulted before client authentication, told of failures."""

from __future__ import annotations

import base64

from tests.oauth.conftest import OAuthKit, answer


class RecordingGuard:
    """Blocks a client after two failures and records what it is told."""

    blocking = True  # a shared limiter would ask Redis

    def __init__(self) -> None:
        self.failures: list[tuple[str | None, str | None]] = []

    def retry_after(self, client_id: str | None, remote: str | None) -> float | None:
        return 30.0 if len(self.failures) >= 2 else None

    def failed(self, client_id: str | None, remote: str | None) -> None:
        self.failures.append((client_id, remote))


FORM = {"grant_type": ["client_credentials"]}


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"order-sync:{secret}".encode()).decode()


def test_failures_are_reported_and_a_blocked_client_gets_429(kit: OAuthKit) -> None:
    """Two wrong secrets are reported with the address; the third attempt is slowed down."""
    guard = RecordingGuard()
    endpoint = kit.endpoint(guard)
    _, secret = kit.secrets.create("order-sync")
    wrong = _basic(secret[:-3] + "xyz")
    for _ in range(2):
        assert answer(lambda: endpoint.handle([wrong], FORM, "192.0.2.7")).status == 401
    assert guard.failures == [("order-sync", "192.0.2.7")] * 2
    slowed = answer(lambda: endpoint.handle([_basic(secret)], FORM, "192.0.2.7"))
    assert slowed.status == 429
    assert slowed.body["error"] == "slow_down"
    assert slowed.headers["Retry-After"] == "30"


def test_a_blocking_guard_keeps_requests_off_the_event_loop(kit: OAuthKit) -> None:
    """handle_now never answers when the guard may do I/O."""
    endpoint = kit.endpoint(RecordingGuard())
    _, secret = kit.secrets.create("order-sync")
    assert endpoint.handle([_basic(secret)], FORM).status == 200
    assert endpoint.handle_now([_basic(secret)], FORM) is None
