"""The rate-limit hook: consulted before client authentication, told of failures."""

from __future__ import annotations

import base64
from pathlib import Path

from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.oauth.client_secrets import ClientSecrets
from interlock.oauth.revocation import TokenRevocations
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys
from interlock.oauth.token_endpoint import TokenEndpoint
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer
from interlock.store import initialise

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"


class RecordingGuard:
    """Blocks a client after two failures and records what it is told."""

    blocking = True  # a shared limiter would ask Redis

    def __init__(self) -> None:
        self.failures: list[tuple[str | None, str | None]] = []

    def retry_after(self, client_id: str | None, remote: str | None) -> float | None:
        return 30.0 if len(self.failures) >= 2 else None

    def failed(self, client_id: str | None, remote: str | None) -> None:
        self.failures.append((client_id, remote))


def test_failures_are_reported_and_a_blocked_client_gets_429(tmp_path: Path) -> None:
    """Two wrong secrets are reported with the address; the third attempt is slowed down."""
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path}/s.db")
    )
    manifest = load_manifest(EXAMPLE)
    keys = SigningKeys(deployment.engine, deployment.keyring)
    keys.ensure()
    issuer = "https://gw.example"
    verifier = AccessTokenVerifier(keys, issuer, manifest)
    secrets = ClientSecrets(deployment.engine, deployment.keyring, manifest)
    guard = RecordingGuard()
    endpoint = TokenEndpoint(
        secrets,
        TokenIssuer(keys, issuer),
        TokenRevocations(verifier, RevokedTokens(deployment.engine)),
        guard,
    )
    _, secret = secrets.create("order-sync")
    wrong = "Basic " + base64.b64encode(b"order-sync:" + secret[:-3].encode() + b"xyz").decode()
    form = {"grant_type": ["client_credentials"]}
    for _ in range(2):
        assert endpoint.handle([wrong], form, "192.0.2.7").status == 401
    assert guard.failures == [("order-sync", "192.0.2.7")] * 2
    right = "Basic " + base64.b64encode(f"order-sync:{secret}".encode()).decode()
    answer = endpoint.handle([right], form, "192.0.2.7")
    assert answer.status == 429
    assert answer.body["error"] == "slow_down"
    assert answer.headers["Retry-After"] == "30"
    deployment.close()


def test_a_blocking_guard_keeps_requests_off_the_event_loop(tmp_path: Path) -> None:
    """handle_now never answers when the guard may do I/O."""
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path}/s.db")
    )
    manifest = load_manifest(EXAMPLE)
    keys = SigningKeys(deployment.engine, deployment.keyring)
    keys.ensure()
    issuer = "https://gw.example"
    secrets = ClientSecrets(deployment.engine, deployment.keyring, manifest)
    endpoint = TokenEndpoint(
        secrets,
        TokenIssuer(keys, issuer),
        TokenRevocations(
            AccessTokenVerifier(keys, issuer, manifest), RevokedTokens(deployment.engine)
        ),
        RecordingGuard(),
    )
    _, secret = secrets.create("order-sync")
    right = "Basic " + base64.b64encode(f"order-sync:{secret}".encode()).decode()
    form = {"grant_type": ["client_credentials"]}
    assert endpoint.handle([right], form).status == 200
    assert endpoint.handle_now([right], form) is None
    deployment.close()
