"""Which manifest clients are OAuth clients (``auth`` lists ``oauth2``)."""

from __future__ import annotations

from interlock.config.manifest import Manifest
from interlock.errors import InvalidRequestError, NotFoundError

__all__ = ["is_oauth_client", "require_oauth_client"]


def is_oauth_client(manifest: Manifest, client: str) -> bool:
    """Whether ``client`` is in the manifest and may use OAuth 2.0."""
    spec = manifest.clients.get(client)
    return spec is not None and "oauth2" in spec.auth


def require_oauth_client(manifest: Manifest, client: str) -> None:
    """Raise :class:`NotFoundError` or :class:`InvalidRequestError` unless ``client`` is one."""
    spec = manifest.clients.get(client)
    if spec is None:
        raise NotFoundError(f"no client {client!r} in the manifest")
    if "oauth2" not in spec.auth:
        raise InvalidRequestError(f"client {client!r} may not use OAuth 2.0")
