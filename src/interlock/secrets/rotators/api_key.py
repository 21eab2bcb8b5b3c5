"""Rotate an Interlock API key: a new key for the same client and scopes, the old one revoked.

Settings: ``client`` (the key's client, from the manifest) and optionally
``lifetime`` in days (default: the old key's lifetime, else 90). The secret's
value is the key itself (``ilk_...``). The new key is made when the pending
version is created and issued on *set* (issuing the same key again is a
no-op); *retire* revokes the old key, which until then keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from interlock.credentials.keyformat import ParsedKey, new_key, parse_key
from interlock.errors import AuthenticationError, NotFoundError
from interlock.identity.apikeys import DEFAULT_LIFETIME, ApiKeys
from interlock.secrets.rotators.base import Credential, RotationError, RotatorContext, option

__all__ = ["ApiKeyRotator", "build"]


class ApiKeyRotator:
    """Issues the pending key for the client; revokes the previous one on retire."""

    def __init__(self, keys: ApiKeys, client: str, lifetime: timedelta | None) -> None:
        """Rotate keys of ``client`` through ``keys``."""
        self._keys = keys
        self._client = client
        self._lifetime = lifetime

    def generate(self, current: Credential) -> bytes:
        """A fresh, well-formed key (256 bits); not valid anywhere until set."""
        token, _ = new_key()
        return token.encode()

    def set(self, pending: Credential, current: Credential) -> None:
        """Issue the pending key with the current key's scopes (all the client's if unknown)."""
        scopes: tuple[str, ...] | None = None
        lifetime = self._lifetime or DEFAULT_LIFETIME
        old = _parsed(current)
        if old is not None:
            try:
                info = self._keys.get(old.key_id)
            except NotFoundError:
                info = None
            if info is not None and info.client == self._client:
                scopes = info.scopes
                lifetime = self._lifetime or info.expires_at - info.created_at
        self._keys.create(self._client, scopes, lifetime, token=_text(pending))

    def test(self, pending: Credential) -> None:
        """Authenticate with the pending key, as a caller of the gateway would."""
        try:
            principal = self._keys.verify(_text(pending))
        except AuthenticationError:
            raise RotationError(f"the new key of {pending.name} does not authenticate") from None
        if principal.client != self._client:
            raise RotationError(f"the new key of {pending.name} belongs to another client")

    def retire(self, old: Credential, current: Credential) -> None:
        """Revoke the old key (revoking it again changes nothing)."""
        parsed, now = _parsed(old), _parsed(current)
        if parsed is None or (now is not None and now.key_id == parsed.key_id):
            return  # not an Interlock key, or the very key still in use
        try:
            self._keys.revoke(parsed.key_id)
        except NotFoundError:
            return  # never issued here: nothing to end


def _text(credential: Credential) -> str:
    return credential.value.reveal().decode("ascii", "replace")


def _parsed(credential: Credential) -> ParsedKey | None:
    return parse_key(_text(credential))


def build(config: Mapping[str, Any], context: RotatorContext) -> ApiKeyRotator:
    """The rotator for ``-o client=NAME [-o lifetime=DAYS]``."""
    days = config.get("lifetime")
    lifetime = timedelta(days=int(days)) if days else None
    keys = ApiKeys(context.engine, context.keyring, context.manifest(), cache_seconds=0)
    return ApiKeyRotator(keys, option(config, "client"), lifetime)
