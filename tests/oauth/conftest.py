"""A token endpoint over the example manifest, for the OAuth unit tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.errors import Refusal
from interlock.gateway.problems import REFUSALS
from interlock.identity.client_secrets import ClientSecrets
from interlock.oauth.guard import AttemptGuard
from interlock.oauth.revocation import TokenRevocations
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys
from interlock.oauth.token_endpoint import TokenEndpoint, TokenResponse
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer
from interlock.store import Deployment, initialise

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"
ISSUER = "https://gw.example"


@dataclass
class OAuthKit:
    """A deployment with the example manifest, its signing keys, secrets and verifier."""

    deployment: Deployment
    manifest: Manifest
    keys: SigningKeys
    secrets: ClientSecrets
    verifier: AccessTokenVerifier

    def endpoint(self, guard: AttemptGuard | None = None, **options: Any) -> TokenEndpoint:
        """A token endpoint for ``ISSUER``; ``options`` as for :class:`TokenEndpoint`."""
        return TokenEndpoint(
            self.secrets,
            TokenIssuer(self.keys, ISSUER),
            TokenRevocations(self.verifier, RevokedTokens(self.deployment.engine)),
            guard,
            **options,
        )


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[OAuthKit]:
    """The example manifest on SQLite, with a signing key."""
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path}/s.db")
    )
    manifest = load_manifest(EXAMPLE)
    keys = SigningKeys(deployment.engine, deployment.keyring)
    keys.ensure()
    yield OAuthKit(
        deployment,
        manifest,
        keys,
        ClientSecrets(deployment.engine, deployment.keyring, manifest),
        AccessTokenVerifier(keys, ISSUER, manifest),
    )
    deployment.close()


@dataclass(frozen=True)
class Answer:
    """What the gateway would send for a token-endpoint call: status, JSON body, headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def answer(call: Callable[[], TokenResponse | None]) -> Answer:
    """Run ``call``; a refusal is rendered as the gateway does (RFC 6749 §5.2, one table)."""
    try:
        result = call()
    except Refusal as refusal:
        kind = REFUSALS[refusal.code]
        body = {"error": refusal.code, "error_description": refusal.detail}
        return Answer(kind.status, body, {**kind.headers, **refusal.headers})
    assert result is not None
    return Answer(result.status, result.body, result.headers)
