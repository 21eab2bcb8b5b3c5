"""Rotate an OAuth client secret: a client may hold two active secrets, so the old one overlaps.

Settings: ``client`` (an OAuth client of the manifest) and optionally
``lifetime`` in days (default 180). The secret's value is the client secret
(``ilcs_...``). *Set* adds the pending secret to the client (adding it again is
a no-op); *retire* revokes the old one. A client that already holds two
active secrets cannot take a third: revoke one first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from interlock.errors import AuthenticationError, NotFoundError
from interlock.identity.client_secrets import (
    DEFAULT_LIFETIME,
    ClientSecrets,
    new_client_secret,
    parse_client_secret,
)
from interlock.secrets.rotators.base import Credential, RotationError, RotatorContext, option

__all__ = ["ClientSecretRotator", "build"]


class ClientSecretRotator:
    """Adds the pending secret to the OAuth client; revokes the previous one on retire."""

    def __init__(self, secrets: ClientSecrets, client: str, lifetime: timedelta) -> None:
        """Rotate secrets of ``client`` through ``secrets``."""
        self._secrets = secrets
        self._client = client
        self._lifetime = lifetime

    def generate(self, current: Credential) -> bytes:
        """A fresh, well-formed secret (256 bits); not valid until set."""
        token, _ = new_client_secret()
        return token.encode()

    def set(self, pending: Credential, current: Credential) -> None:
        """Add the pending secret to the client, next to the current one."""
        self._secrets.create(self._client, self._lifetime, token=_text(pending))

    def test(self, pending: Credential) -> None:
        """Authenticate the client with the pending secret, as the token endpoint does."""
        try:
            self._secrets.authenticate(self._client, _text(pending))
        except AuthenticationError:
            raise RotationError(
                f"the new secret of {pending.name} does not authenticate {self._client}"
            ) from None

    def retire(self, old: Credential, current: Credential) -> None:
        """Revoke the old secret (revoking it again changes nothing)."""
        parsed, now = parse_client_secret(_text(old)), parse_client_secret(_text(current))
        if parsed is None or (now is not None and now.key_id == parsed.key_id):
            return
        try:
            self._secrets.revoke(parsed.key_id)
        except NotFoundError:
            return


def _text(credential: Credential) -> str:
    return credential.value.reveal().decode("ascii", "replace")


def build(config: Mapping[str, Any], context: RotatorContext) -> ClientSecretRotator:
    """The rotator for ``-o client=NAME [-o lifetime=DAYS]``."""
    days = config.get("lifetime")
    lifetime = timedelta(days=int(days)) if days else DEFAULT_LIFETIME
    secrets = ClientSecrets(context.engine, context.keyring, context.manifest())
    return ClientSecretRotator(secrets, option(config, "client"), lifetime)
