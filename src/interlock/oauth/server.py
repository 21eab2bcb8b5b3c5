"""The authorization server, assembled: once per process, and once per manifest.

What lives as long as the process is opened once: the token-signing keys, the
revocation list (mirrored through Redis across replicas), the single-use
values of assertions and DPoP proofs, the DPoP nonce key and the guard against
secret guessing. What depends on the manifest — the token endpoint with its
clients, secrets and keys, and the access-token verifier with the trusted
issuers' policies — is built by :meth:`AuthorizationServer.for_manifest`, so a
reload builds new ones instead of updating the old. :meth:`maintain` rotates
the signing keys when due and forgets what has expired.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import redis
from sqlalchemy.exc import SQLAlchemyError

from interlock.clock import Clock, utc_now
from interlock.config.manifest import Manifest
from interlock.crypto.hashing import new_pepper
from interlock.errors import InterlockError
from interlock.identity.client_keys import ClientKeys
from interlock.identity.client_secrets import ClientSecrets
from interlock.logs import get_logger
from interlock.oauth.client_assertion import ClientAssertions
from interlock.oauth.dpop import DPoPNonces, DPoPVerifier
from interlock.oauth.guard import AttemptGuard
from interlock.oauth.revocation import TokenRevocations
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys
from interlock.oauth.token_endpoint import CertificateClients, TokenEndpoint
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer
from interlock.oauth.trusted import trusted_policies
from interlock.replay.seen import SeenOnce, SqlSeen, seen_store
from interlock.store import Deployment
from interlock.store.sealed_values import sealed_setting

__all__ = ["MAINTENANCE_SECONDS", "AuthorizationServer", "OAuthForManifest", "maintain_once"]

MAINTENANCE_SECONDS: Final = 60.0
_log = get_logger("interlock.oauth")


@dataclass(frozen=True)
class OAuthForManifest:
    """One manifest's token endpoint and access-token verifier."""

    endpoint: TokenEndpoint
    verifier: AccessTokenVerifier


@dataclass(frozen=True)
class AuthorizationServer:
    """The parts of the authorization server that outlive a manifest."""

    deployment: Deployment
    issuer: str
    keys: SigningKeys
    revoked: RevokedTokens
    seen: SeenOnce
    nonces: DPoPNonces | None
    guard: AttemptGuard | None
    now: Clock = utc_now

    @classmethod
    def open(
        cls,
        deployment: Deployment,
        issuer: str,
        keys: SigningKeys,
        redis_client: redis.Redis | None,
        guard: AttemptGuard | None = None,
    ) -> AuthorizationServer:
        """Open the long-lived parts; ``redis_client`` (if any) shares them across replicas.

        The caller owns ``redis_client`` and closes it after :meth:`close`.
        """
        engine = deployment.engine
        nonces = None
        if deployment.settings.oauth_dpop_nonce:
            key = sealed_setting(engine, deployment.keyring, "oauth.dpop_nonce_key", new_pepper)
            nonces = DPoPNonces(key)
        return cls(
            deployment,
            issuer,
            keys,
            RevokedTokens(engine, redis_client=redis_client),
            seen_store(engine, redis_client),
            nonces,
            guard,
        )

    def for_manifest(
        self,
        manifest: Manifest,
        *,
        keys: ClientKeys,
        trust: Callable[[str], ssl.SSLContext],
        certificates: CertificateClients | None = None,
    ) -> OAuthForManifest:
        """The token endpoint and verifier of ``manifest``.

        ``keys`` are the clients' registered keys (``private_key_jwt``);
        ``trust(ca)`` verifies a trusted issuer's JWKS endpoint; ``certificates``
        enables ``tls_client_auth`` and certificate-bound tokens (RFC 8705).
        """
        engine, keyring = self.deployment.engine, self.deployment.keyring
        lifetime = timedelta(seconds=self.deployment.settings.oauth_token_lifetime_seconds)
        verifier = AccessTokenVerifier(
            self.keys,
            self.issuer,
            manifest,
            revoked=self.revoked,
            trusted=trusted_policies(manifest, trust),
        )
        endpoint = TokenEndpoint(
            ClientSecrets(engine, keyring, manifest),
            TokenIssuer(self.keys, self.issuer, lifetime),
            TokenRevocations(verifier, self.revoked),
            assertions=ClientAssertions(keys, self.seen, self.issuer),
            dpop=DPoPVerifier(self.seen, nonces=self.nonces),
            certificates=certificates,
            guard=self.guard,
        )
        return OAuthForManifest(endpoint, verifier)

    async def maintain(self, rotated: Callable[[str], None]) -> None:
        """Every minute until cancelled: one maintenance round; ``rotated(kid)`` on a rotation."""
        while True:
            await asyncio.sleep(MAINTENANCE_SECONDS)
            try:
                kid = await asyncio.to_thread(
                    maintain_once, self.keys, self.revoked, self.seen, self.now
                )
            except (InterlockError, SQLAlchemyError, OSError) as exc:
                _log.warning("maintenance failed; retrying next round", error=str(exc))
                continue
            if kid is not None:
                rotated(kid)

    def close(self) -> None:
        """Stop listening for other replicas' revocations."""
        self.revoked.close()


def maintain_once(
    keys: SigningKeys, revoked: RevokedTokens, seen: SeenOnce, now: Clock = utc_now
) -> str | None:
    """One round: rotate signing keys when due, forget what has expired anyway.

    Returns the kid of a signing key this round created, if any.
    """
    created = keys.ensure()  # scheduled rotation, retired keys deleted
    moment = now()
    revoked.purge(moment)
    if isinstance(seen, SqlSeen):
        seen.purge(moment)
    return created
