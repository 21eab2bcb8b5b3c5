"""Which clients the manifest has, and which are OAuth clients (``auth`` lists ``oauth2``)."""

from __future__ import annotations

from interlock.config.manifest import Manifest
from interlock.errors import InvalidRequestError, NotFoundError

__all__ = ["is_oauth_client", "require_client", "require_oauth_client"]


def is_oauth_client(manifest: Manifest, client: str) -> bool:
    """Whether ``client`` is in the manifest and may use OAuth 2.0."""
    spec = manifest.clients.get(client)
    return spec is not None and "oauth2" in spec.auth


def require_client(manifest: Manifest, client: str) -> None:
    """Raise :class:`NotFoundError` unless ``client`` is in the manifest."""
    if client not in manifest.clients:
        raise NotFoundError.unknown("client", client, manifest.clients)


def require_oauth_client(manifest: Manifest, client: str) -> None:
    """Raise :class:`NotFoundError` or :class:`InvalidRequestError` unless ``client`` is one."""
    require_client(manifest, client)
    spec = manifest.clients[client]
    if "oauth2" not in spec.auth:
        raise InvalidRequestError(f"client {client!r} may not use OAuth 2.0")
