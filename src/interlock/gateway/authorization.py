"""The gateway's OAuth 2.0 parts, assembled from settings, and their schedule.

Token endpoint (client secrets, ``private_key_jwt``, DPoP), the verifier for
our tokens and the manifest's trusted issuers, the replay store and the
revocation list (Redis when configured), and the maintenance round that
rotates signing keys and forgets what has expired.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import redis
from sqlalchemy.exc import SQLAlchemyError

from interlock.crypto.hashing import new_pepper
from interlock.errors import InterlockError
from interlock.gateway.app import Gateway
from interlock.gateway.audit_trail import GatewayAudit
from interlock.gateway.tls import trust_context
from interlock.logs import get_logger
from interlock.oauth.client_assertion import ClientAssertions
from interlock.oauth.client_keys import ClientKeys
from interlock.oauth.client_secrets import ClientSecrets
from interlock.oauth.dpop import DPoPNonces, DPoPVerifier
from interlock.oauth.guard import AttemptGuard
from interlock.oauth.revocation import TokenRevocations
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys
from interlock.oauth.token_endpoint import TokenEndpoint
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer
from interlock.oauth.trusted import trusted_policies
from interlock.replay.seen import SeenOnce, SqlSeen, seen_store
from interlock.store import Deployment
from interlock.store.sealed_values import sealed_setting

__all__ = ["OAuthParts", "enable_oauth", "maintain_once"]

MAINTENANCE_SECONDS: Final = 60.0
_log = get_logger("interlock.gateway")


@dataclass(frozen=True)
class OAuthParts:
    """What the running gateway keeps of its OAuth set-up."""

    keys: SigningKeys
    revoked: RevokedTokens
    seen: SeenOnce
    redis_client: redis.Redis | None
    audit: GatewayAudit | None = None

    async def maintain(self) -> None:
        """The schedule, every minute until cancelled."""
        while True:
            await asyncio.sleep(MAINTENANCE_SECONDS)
            try:
                kid = await asyncio.to_thread(maintain_once, self.keys, self.revoked, self.seen)
            except (InterlockError, SQLAlchemyError, OSError) as exc:
                _log.warning("maintenance failed; retrying next round", error=str(exc))
                continue
            if kid is not None and self.audit is not None:
                self.audit.lifecycle("signing_key.rotate", {"kid": kid})

    def close(self) -> None:
        """Stop listening for revocations; close the Redis connection."""
        self.revoked.close()
        if self.redis_client is not None:
            self.redis_client.close()


def enable_oauth(  # noqa: PLR0917  (the parts the gateway shares with OAuth)
    gateway: Gateway,
    deployment: Deployment,
    issuer: str,
    keys: SigningKeys,
    anchors: dict[str, Path],
    shared: redis.Redis | None = None,
    guard: AttemptGuard | None = None,
) -> OAuthParts:
    """Serve the OAuth endpoints on ``gateway`` and accept access tokens on its routes.

    ``shared`` is the gateway's Redis client (closed by :meth:`OAuthParts.close`);
    ``guard`` limits failed client authentications.
    """
    settings = deployment.settings
    manifest = gateway.manifest
    revoked = RevokedTokens(deployment.engine, redis_client=shared)
    verifier = AccessTokenVerifier(keys, issuer, manifest, revoked=revoked)
    seen = seen_store(deployment.engine, shared)
    nonces = None
    if settings.oauth_dpop_nonce:
        key = sealed_setting(
            deployment.engine, deployment.keyring, "oauth.dpop_nonce_key", new_pepper
        )
        nonces = DPoPNonces(key)
    gateway.enable_oauth(
        TokenEndpoint(
            ClientSecrets(deployment.engine, deployment.keyring, manifest),
            TokenIssuer(keys, issuer, timedelta(seconds=settings.oauth_token_lifetime_seconds)),
            TokenRevocations(verifier, revoked),
            assertions=ClientAssertions(
                ClientKeys(deployment.engine, manifest),
                seen,
                frozenset({issuer, f"{issuer}/oauth2/token"}),
            ),
            dpop=DPoPVerifier(seen, nonces=nonces),
            # tls_client_auth and certificate-bound tokens, when the listener asks for certificates.
            certificates=gateway.certificates,
            guard=guard,
        ),
        verifier,
        lambda current: trusted_policies(
            current, lambda ca: trust_context(ca, anchors, current.tls.min_version)
        ),
    )
    return OAuthParts(keys, revoked, seen, shared, gateway.audit)


def maintain_once(keys: SigningKeys, revoked: RevokedTokens, seen: SeenOnce) -> str | None:
    """One round: rotate signing keys when due, forget what has expired anyway.

    Returns the kid of a signing key this round created, if any.
    """
    now = datetime.now(UTC)
    created = keys.ensure()  # scheduled rotation, retired keys deleted
    revoked.purge(now)
    if isinstance(seen, SqlSeen):
        seen.purge(now)
    return created
