"""What a client may do: scopes from its roles in the manifest."""

from __future__ import annotations

from dataclasses import dataclass

from interlock.config.manifest import Manifest

__all__ = ["Grants", "Principal", "client_scopes", "system_url"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and the scopes it holds for this request."""

    client: str
    scopes: frozenset[str]
    credential: str  # e.g. "api-key ab12cd34ef56": the credential's id, never the secret
    # RFC 9449 §6: the thumbprint of the key a DPoP-bound token is bound to.
    dpop_jkt: str | None = None
    # RFC 8707: the systems (by URL) an audience-restricted token is good for; None: any.
    audiences: frozenset[str] | None = None
    # How the caller authenticated: api_key, oauth2 (an access token) or mtls (a certificate).
    method: str = "api_key"
    # RFC 8705 §3: the SHA-256 thumbprint of the certificate a token is bound to.
    cert_thumbprint: str | None = None
    # An access token this gateway issued for itself (audience: its issuer URL), the only
    # kind its own endpoints (the vault) accept; a token for some systems is not one.
    for_gateway: bool = False

    def satisfies(self, methods: tuple[str, ...]) -> bool:
        """Whether this caller authenticated in one of ``methods``.

        A certificate-bound token (RFC 8705) was presented over a connection with
        that very certificate, so it counts as ``mtls`` as well.
        """
        return self.method in methods or ("mtls" in methods and self.cert_thumbprint is not None)


def client_scopes(manifest: Manifest, client: str) -> frozenset[str]:
    """Every scope the client's roles grant (empty for an unknown client)."""
    spec = manifest.clients.get(client)
    if spec is None:
        return frozenset()
    return frozenset(
        scope for role in spec.roles for scope in getattr(manifest.roles.get(role), "scopes", ())
    )


class Grants:
    """Every client's scopes in one manifest, computed once (not per request)."""

    __slots__ = ("_by_client", "_systems", "manifest", "system_urls")

    def __init__(self, manifest: Manifest) -> None:
        """Compute the grants of ``manifest``."""
        self.manifest = manifest
        self._by_client = {name: client_scopes(manifest, name) for name in manifest.clients}
        self.system_urls = frozenset(system_url(s.url) for s in manifest.systems.values())
        reached: dict[str, set[str]] = {}
        for flow in manifest.integrations.values():
            for route in flow.routes:
                system = manifest.systems.get(route.upstream)
                if system is not None:
                    for caller in flow.all_callers:  # a route is its integration's callers'
                        reached.setdefault(caller, set()).add(system_url(system.url))
        self._systems = {client: frozenset(urls) for client, urls in reached.items()}

    def scopes(self, client: str) -> frozenset[str]:
        """The client's scopes (empty for an unknown client)."""
        return self._by_client.get(client, frozenset())

    def systems(self, client: str) -> frozenset[str]:
        """URLs of the systems the client's routes reach (its RFC 8707 resources)."""
        return self._systems.get(client, frozenset())


def system_url(url: str) -> str:
    """A system's URL as a resource indicator (RFC 8707): as declared, without a final '/'."""
    return url.rstrip("/")
