"""The data-subject request service as the faces assemble it: gateway, CLI and demo alike.

The service's webhook connector signs with the client SDK's RFC 9421 signer
(:class:`interlock.sdk.rfc9421.RequestSigner`), which no module below the
faces may import; so the face hands it in, here, once: Interlock's current
OAuth signing key (its ``kid`` is in ``/.well-known/jwks.json``, where a
receiving system finds the public key). :func:`privacy_factory` is what
``interlock serve`` and ``interlock demo`` give the gateway (``/v1/privacy``
and the due work in the background); ``interlock privacy request`` builds the
same service (:func:`privacy_service`) for one command.
"""

from __future__ import annotations

from collections.abc import Callable

from joserfc.jwk import ECKey, OKPKey

from interlock.config.manifest import Manifest
from interlock.gateway.privacy_runtime import PrivacyFactory, PrivacyParts
from interlock.gateway.privacy_service import PrivacyRequestsApi, SubjectTracer
from interlock.gateway.tls import trust_context
from interlock.gdpr.identifiers import normalise
from interlock.oauth.signing_keys import SigningKeys
from interlock.privacy.connectors import ConnectorEnvironment, connector_factory
from interlock.privacy.requests import PrivacyRequests
from interlock.privacy.trace import TraceReport, trace_subject
from interlock.sdk.rfc9421 import RequestSigner

__all__ = ["privacy_factory", "privacy_service", "request_signer"]


def request_signer(keys: SigningKeys) -> Callable[[], RequestSigner]:
    """Interlock's webhook signer: a fresh one per use, so a rotated key takes over."""

    def signer() -> RequestSigner:
        keys.ensure()  # the first key, as the gateway makes it at start
        current = keys.signer()
        if not isinstance(current.key, ECKey | OKPKey):
            # ValueError, as RequestSigner raises for such keys: the connector explains.
            raise ValueError("RSA keys cannot sign webhook requests")  # noqa: TRY004
        return RequestSigner(current.kid, current.key)

    return signer


def privacy_service(
    parts: PrivacyParts, manifest: Manifest, signer: Callable[[], RequestSigner]
) -> PrivacyRequests:
    """The data-subject request service of ``manifest`` over ``parts``, its connectors
    trusting the systems' anchors and signing with ``signer``."""
    environment = ConnectorEnvironment(
        secrets=parts.vault,
        trust=lambda ca: trust_context(ca, parts.anchors, manifest.tls.min_version),
        signer=signer,
    )
    return PrivacyRequests(
        parts.engine,
        parts.keyring,
        manifest,
        parts.audit,
        parts.lineage,
        parts.lineage.hasher,
        connectors=connector_factory(manifest, environment),
        audit_engine=parts.audit_engine,
    )


def privacy_factory(signer: Callable[[], RequestSigner]) -> PrivacyFactory:
    """The real service and tracer per manifest, from the gateway's process-wide parts."""

    def build(parts: PrivacyParts, manifest: Manifest) -> tuple[PrivacyRequestsApi, SubjectTracer]:
        requests = privacy_service(parts, manifest, signer)
        lineage = parts.lineage

        def trace(kind: str, identifier: str, region: str | None, /) -> TraceReport:
            return trace_subject(
                manifest,
                lineage,
                lineage.hasher,
                parts.audit_engine,
                kind,
                normalise(kind, identifier, region=region),
            )

        return requests, trace

    return build
