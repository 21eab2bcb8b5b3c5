"""Issuer policies for the manifest's ``trusted_issuers`` (Keycloak, Entra ID, ...)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from interlock.config.manifest import Manifest, TrustedIssuer
from interlock.oauth.keysets import KeySet, file_jwks, https_jwks
from interlock.oauth.tokens import IssuerPolicy

__all__ = ["trusted_policies"]


def trusted_policies(
    manifest: Manifest, tls_context: Callable[[str], ssl.SSLContext]
) -> list[IssuerPolicy]:
    """One policy per trusted issuer; ``tls_context(ca)`` verifies its JWKS endpoint."""
    return [_policy(name, spec, tls_context) for name, spec in manifest.trusted_issuers.items()]


def _policy(
    name: str, spec: TrustedIssuer, tls_context: Callable[[str], ssl.SSLContext]
) -> IssuerPolicy:
    if spec.jwks_uri is not None:
        load = https_jwks(spec.jwks_uri, tls_context(spec.ca))
    else:
        load = file_jwks(Path(spec.jwks_file or ""))
    return IssuerPolicy(
        issuer=spec.issuer,
        keys=KeySet(load, max_age=300.0, min_refresh=10.0, name=f"trusted issuer {name}"),
        audiences=frozenset(spec.audiences),
        algorithms=frozenset(spec.algorithms),
        token_types=frozenset(spec.token_types),
        client_claims=(spec.client_claim,),
        clients=dict(spec.clients),
    )
