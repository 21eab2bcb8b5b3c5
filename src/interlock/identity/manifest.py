"""One manifest's callers, built together: the identity package's factory.

The composition root (:func:`interlock.gateway.assembly.build_gateway`) asks
for them once per manifest; a reload builds new ones. The stores behind them
(API keys, client keys) outlive the manifest: only what the manifest decides
(which clients exist, their grants) is new.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from interlock.config.manifest import Manifest
from interlock.crypto.keyring import Keyring
from interlock.identity.apikeys import ApiKeys
from interlock.identity.client_keys import ClientKeys
from interlock.identity.grants import Grants

__all__ = ["ManifestIdentity"]


@dataclass(frozen=True)
class ManifestIdentity:
    """Who a manifest's callers are: their API keys, their registered keys and their grants."""

    api_keys: ApiKeys
    # One registry of the clients' keys: private_key_jwt and signed requests alike.
    client_keys: ClientKeys
    grants: Grants

    @classmethod
    def for_manifest(cls, engine: Engine, keyring: Keyring, manifest: Manifest) -> ManifestIdentity:
        """The API keys, client keys and grants of ``manifest``, on the deployment's store."""
        return cls(
            ApiKeys(engine, keyring, manifest),
            ClientKeys(engine, keyring, manifest),
            Grants(manifest),
        )
