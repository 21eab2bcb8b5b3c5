"""``interlock clients revoke``: end everything that lets one client in, at once.

A client gets in with client secrets, ``private_key_jwt`` keys, API keys,
request-signature keys, certificates from the deployment's PKI, access tokens
already issued to it, and reads the vault through its grants. Each package
owns its part (identity, pki, oauth, secrets) and they may not import each
other, so the face composes them here, credentials first and issued tokens
after, so nothing can mint a token that outlives the cut. A revoked credential
still works on a replica until that replica's cache lets go of it, so the cut
reaches :data:`CREDENTIAL_PROPAGATION` past the moment of the switch: every
token minted meanwhile is cut too. Every step is idempotent: after a failure,
running the command again finishes the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from interlock.config.manifest import Manifest
from interlock.gateway.crl import WATCH_SECONDS
from interlock.identity.apikeys import ApiKeys
from interlock.identity.client_keys import ClientKeys
from interlock.identity.client_secrets import RECENT_SECONDS, ClientSecrets
from interlock.oauth.revoked import RevokedTokens
from interlock.pki.authority import Pki
from interlock.secrets.policy import AccessPolicy, Grant
from interlock.store import Deployment
from interlock.store.redis_client import connect_redis

__all__ = ["CREDENTIAL_PROPAGATION", "Ended", "end_client"]

# How long after the switch a credential it ended can still get a token: a
# replica reuses a client secret's row for RECENT_SECONDS after reading it, and
# refuses a revoked certificate (tls_client_auth) once its CRL watcher has read
# the revoked serials, every WATCH_SECONDS. Each is counted twice: a row read,
# or a watcher round begun, just before the revocation honours the credential
# from a moment after it, and issuing the token takes a moment more.
# private_key_jwt keys are read per token request.
CREDENTIAL_PROPAGATION: Final = timedelta(seconds=2 * max(RECENT_SECONDS, WATCH_SECONDS))


@dataclass(frozen=True)
class Ended:
    """What the kill switch ended for one client."""

    client: str
    client_secrets: int
    assertion_keys: int
    api_keys: int
    signature_keys: int
    certificates: tuple[str, ...]  # serials, now on the CRL
    tokens_issued_until: datetime
    grants: tuple[Grant, ...]

    @property
    def credentials(self) -> int:
        """How many credentials ended (issued tokens and grants not counted)."""
        return (
            self.client_secrets
            + self.assertion_keys
            + self.api_keys
            + self.signature_keys
            + len(self.certificates)
        )


def end_client(
    deployment: Deployment, manifest: Manifest, client: str, reason: str = "unspecified"
) -> Ended:
    """Revoke every credential, certificate (``reason``), issued token and grant of ``client``."""
    engine, keyring = deployment.engine, deployment.keyring
    settings = deployment.settings
    pki = Pki(engine, keyring, deployment.deployment_id, settings.trust_domain)
    certificates = pki.revoke_client(client, reason)
    keys = ClientKeys(engine, keyring, manifest)
    secrets = ClientSecrets(engine, keyring, manifest).revoke_client(client)
    assertion = keys.revoke_client(client, "assertion")
    signature = keys.revoke_client(client, "signature")
    api_keys = ApiKeys(engine, keyring, manifest).revoke_client(client)
    shared = connect_redis(settings)
    try:
        revoked = RevokedTokens(engine, redis_client=shared, listen=False)
        until = revoked.revoke_client(client, ahead=CREDENTIAL_PROPAGATION)
    finally:
        if shared is not None:
            shared.close()
    grants = AccessPolicy(engine).revoke_client(client)
    return Ended(
        client,
        secrets,
        assertion,
        api_keys,
        signature,
        tuple(certificates),
        until,
        tuple(grants),
    )
