"""Who gets a client certificate: a client of the manifest that may use mutual TLS.

The gateway maps a certificate's SPIFFE ID to the manifest client of that name,
and only to one that lists ``mtls`` in its ``auth``; a certificate for any other
name authenticates nobody. Issuing one anyway hides a typo until the first
handshake, and leaves a valid credential waiting for a client of that name to
appear in a later manifest. So the name is checked before anything is signed.
"""

from __future__ import annotations

from datetime import timedelta

from interlock.config.manifest import Manifest
from interlock.errors import InvalidRequestError, NotFoundError, did_you_mean
from interlock.pki.authority import DEFAULT_LIFETIME, Issued, Pki

__all__ = ["check_mtls_client", "issue_for_client"]


def issue_for_client(
    pki: Pki, manifest: Manifest, name: str, lifetime: timedelta = DEFAULT_LIFETIME
) -> Issued:
    """A client certificate for ``name``, which ``manifest`` must let use mutual TLS."""
    pki.client_identity(name)  # a malformed name is refused as such first
    check_mtls_client(manifest, name)
    return pki.issue_client(name, lifetime)


def check_mtls_client(manifest: Manifest, name: str) -> None:
    """Refuse ``name`` unless it is a client of ``manifest`` that may use mutual TLS."""
    spec = manifest.clients.get(name)
    if spec is None:
        hint = did_you_mean(name, manifest.clients) or "; add it before its certificate"
        raise NotFoundError(f"no client {name!r} in the manifest{hint}")
    if "mtls" not in spec.auth:
        raise InvalidRequestError(
            f"client {name!r} may not use mutual TLS (its auth is {', '.join(spec.auth)}); "
            "add mtls to its auth in the manifest"
        )
