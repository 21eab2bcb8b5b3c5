"""The composition root: the gateway assembled once per process, and once per manifest.

:class:`GatewayServices` opens what lives as long as the process — the audit
log, the lineage index, the vault, the Redis client, the rate limiter and the
failure budget, the idempotency and nonce stores, the authorization server's
long-lived parts, the JWKS and CRL publishers. :func:`build_gateway` makes
everything that depends on one manifest from them, through each package's
factory — the callers' keys and grants
(:meth:`~interlock.identity.manifest.ManifestIdentity.for_manifest`), the
token endpoint and verifier (:meth:`~interlock.oauth.server.AuthorizationServer.for_manifest`),
authentication (:meth:`~interlock.gateway.stages.authenticate.Authentication.for_manifest`),
business rules (:class:`~interlock.validation.rules.Rules`), the route table
(:meth:`~interlock.gateway.routing.RouteTable.compile`) and the route
pipelines (:func:`~interlock.gateway.pipeline.build_pipelines`) — and mounts
the own endpoints, so a reload builds a new
:class:`~interlock.gateway.app.Gateway` and swaps it in; nothing is updated in
place. The order of the own endpoints is written here and nowhere else; the
order of a route's stages in :mod:`interlock.gateway.pipeline`.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import redis
import redis.asyncio

from interlock.audit.service import AuditLog
from interlock.config.manifest import Manifest
from interlock.errors import InterlockError
from interlock.events.registry import SchemaRegistry, declared_subjects, subject_producers
from interlock.gateway.app import Gateway
from interlock.gateway.as2_api import PREFIX as AS2_PREFIX
from interlock.gateway.as2_api import build_as2_endpoint
from interlock.gateway.as2_api import label as as2_label
from interlock.gateway.audit_trail import GatewayAudit
from interlock.gateway.certificate_status import CertificateStatus
from interlock.gateway.client_address import TrustedProxies
from interlock.gateway.crl import CrlPublisher
from interlock.gateway.endpoints import (
    GET,
    AuthorizationMetadata,
    CrlEndpoint,
    Endpoints,
    Health,
    JwksEndpoint,
    Mount,
    OAuthForm,
    PrivacyEndpoint,
    VaultEndpoint,
)
from interlock.gateway.guessing import GuessingGuard
from interlock.gateway.hosts import GatewayNames
from interlock.gateway.manifest_status import ManifestStatus
from interlock.gateway.messaging_keys import MESSAGING_PREFIX, MessagingKeysEndpoint
from interlock.gateway.messaging_keys import label as messaging_label
from interlock.gateway.metrics import GatewayMetrics
from interlock.gateway.mtls import ClientCertificates
from interlock.gateway.observer import RequestObserver
from interlock.gateway.partner_notify import partner_notifier
from interlock.gateway.pipeline import Backends, build_pipelines
from interlock.gateway.privacy_api import PREFIX as PRIVACY_PREFIX
from interlock.gateway.privacy_api import label as privacy_label
from interlock.gateway.privacy_runtime import PrivacyParts, PrivacyRuntime
from interlock.gateway.readiness import Readiness, engine_check
from interlock.gateway.renewal import RenewingCertificate
from interlock.gateway.routing import RouteTable
from interlock.gateway.schema_api import PREFIX as SCHEMAS_PREFIX
from interlock.gateway.schema_api import SchemaApi
from interlock.gateway.schema_api import label as schemas_label
from interlock.gateway.stages.authenticate import Authentication
from interlock.gateway.tls import ClientAuth, trust_context
from interlock.gateway.upstream import UpstreamLimits, Upstreams
from interlock.gateway.vault_api import PREFIX as VAULT_PREFIX
from interlock.gateway.vault_api import VaultApi
from interlock.identity.client_keys import ClientKeys
from interlock.identity.manifest import ManifestIdentity
from interlock.limits import (
    FailureGuard,
    FailureMode,
    FailurePolicy,
    Limiter,
    MemoryLimiter,
    RedisLimiter,
)
from interlock.limits.scope import in_process_shares
from interlock.logs import get_logger
from interlock.messaging.keys import MessagingKeys, keyed_spec
from interlock.oauth.jwks import JwksPublisher
from interlock.oauth.server import AuthorizationServer, OAuthForManifest
from interlock.oauth.signing_keys import SigningKeys
from interlock.privacy.lineage import LineageIndex, load_subject_hasher
from interlock.replay.idempotency import IdempotencyStore, idempotency_store
from interlock.replay.seen import SeenOnce, seen_store
from interlock.replay.signatures import RequestSignatures
from interlock.secrets.vault import Vault
from interlock.store import Deployment
from interlock.store.redis_client import connect_redis, connect_redis_async
from interlock.validation.rules import Rules

__all__ = ["GatewayServices", "build_gateway", "resume_partner_notices"]

_HEALTH_METHODS: Final = frozenset({"GET", "HEAD"})
_log = get_logger("interlock.gateway.assembly")


@dataclass(frozen=True)
class GatewayServices:
    """What the gateway keeps across manifests; :meth:`close` releases it."""

    deployment: Deployment
    metrics: GatewayMetrics
    audit_log: AuditLog
    audit: GatewayAudit
    lineage: LineageIndex  # persons identified in traffic, as keyed hashes (the store)
    vault: Vault
    redis_client: redis.Redis | None
    # The same Redis through redis.asyncio, for per-request calls awaited on the loop.
    redis_async: redis.asyncio.Redis | None
    limiter: Limiter
    guessing: GuessingGuard
    idempotency: IdempotencyStore
    nonces: SeenOnce  # of signed requests, single-use across replicas
    oauth: AuthorizationServer
    jwks: JwksPublisher
    crl: CrlPublisher
    # Client certificates, checked on every request against the CRL the listener enforces.
    certificates: CertificateStatus
    names: GatewayNames  # the host names it answers for, and its public URL (the issuer)
    anchors: dict[str, Path]  # pki:NAME -> CA file, for upstreams and trusted issuers
    upstream_identity: RenewingCertificate
    client_auth: ClientAuth
    limits: UpstreamLimits
    manifest_dir: Path | None
    proxies: TrustedProxies  # who may report the caller's address (INTERLOCK_TRUSTED_PROXIES)
    # Data-subject requests (/v1/privacy) and their due work; None: not served.
    privacy: PrivacyRuntime | None = None
    # Signs the rejection reports' webhooks to AS2 partners (RFC 9421, handed in by the face).
    notify_auth: Callable[[], httpx.Auth] | None = None
    # The manifest enforced (file or store version), for /readyz and the metrics.
    manifest_status: ManifestStatus = field(default_factory=ManifestStatus)

    @classmethod
    async def open(  # noqa: PLR0917  (the listener's parts, handed over once)
        cls,
        deployment: Deployment,
        names: GatewayNames,
        crl: CrlPublisher,
        anchors: dict[str, Path],
        upstream_identity: RenewingCertificate,
        client_auth: ClientAuth,
        limits: UpstreamLimits,
        manifest_dir: Path | None,
        *,
        privacy: PrivacyRuntime | None = None,
        notify_auth: Callable[[], httpx.Auth] | None = None,
    ) -> GatewayServices:
        """Open the audit log, the vault, Redis, limits and the authorization server.

        ``names.public_url`` is the issuer of the gateway's tokens; ``privacy``
        serves data-subject requests (None: ``/v1/privacy`` answers 404);
        ``notify_auth`` signs the rejection reports' webhooks to AS2 partners.
        """
        settings = deployment.settings
        metrics = GatewayMetrics()
        signing_keys = SigningKeys(
            deployment.engine, deployment.keyring, settings.oauth_signing_alg
        )
        # The first signing key exists before anyone asks for the JWKS.
        await asyncio.to_thread(signing_keys.ensure)
        # The audit trail: its own database (INTERLOCK_AUDIT_DATABASE_URL), set at deploy time.
        audit_log = await asyncio.to_thread(
            functools.partial(AuditLog.open, settings, deployment.keyring, heartbeat=True)
        )
        writer = audit_log.writer
        metrics.watch_audit(lambda: writer.queued, lambda: writer.lost)
        try:
            hasher = await asyncio.to_thread(
                load_subject_hasher, deployment.engine, deployment.keyring
            )
        except BaseException:
            audit_log.close()
            raise
        lineage = LineageIndex(deployment.engine, hasher)
        metrics.watch_lineage(lambda: lineage.queued, lambda: lineage.lost)
        shared = connect_redis(settings, observe=metrics.redis_command)
        shared_async = connect_redis_async(settings, observe=metrics.redis_command)
        try:
            return cls._assemble(
                deployment,
                names,
                metrics,
                signing_keys,
                audit_log,
                lineage,
                (shared, shared_async),
                crl,
                anchors,
                upstream_identity,
                client_auth,
                limits,
                manifest_dir,
                privacy,
                notify_auth=notify_auth,
            )
        except BaseException:
            lineage.close()
            audit_log.close()
            if shared is not None:
                shared.close()
            if shared_async is not None:
                await shared_async.aclose()
            raise

    @classmethod
    def _assemble(  # noqa: PLR0917  (open's parts, in one private step)
        cls,
        deployment: Deployment,
        names: GatewayNames,
        metrics: GatewayMetrics,
        signing_keys: SigningKeys,
        audit_log: AuditLog,
        lineage: LineageIndex,
        redis_clients: tuple[redis.Redis | None, redis.asyncio.Redis | None],
        crl: CrlPublisher,
        anchors: dict[str, Path],
        upstream_identity: RenewingCertificate,
        client_auth: ClientAuth,
        limits: UpstreamLimits,
        manifest_dir: Path | None,
        privacy: PrivacyRuntime | None,
        *,
        notify_auth: Callable[[], httpx.Auth] | None,
    ) -> GatewayServices:
        settings = deployment.settings
        shared, shared_async = redis_clients
        shares = in_process_shares(
            shared_backend=shared is not None,
            workers=settings.workers,
            local_limits=settings.local_limits,
        )
        limiter = _limiter(redis_clients, settings.rate_limit_failure, metrics, shares)
        # Failed authentications per address: one budget for the token endpoint and the routes.
        failures = FailureGuard(limiter, per_address=settings.auth_failures_per_ip)
        engine = deployment.engine
        audit = GatewayAudit(audit_log.sink, lineage)
        return cls(
            deployment=deployment,
            metrics=metrics,
            audit_log=audit_log,
            audit=audit,
            lineage=lineage,
            # Outbound credentials: resolved through the vault, every read on the audit trail.
            vault=Vault(engine, deployment.keyring, audit=audit_log.sink),
            redis_client=shared,
            redis_async=shared_async,
            limiter=limiter,
            guessing=GuessingGuard(failures),
            # Idempotency-Key records: Redis when configured, else the store.
            idempotency=idempotency_store(
                engine, shared, deployment.keyring, async_client=shared_async
            ),
            nonces=seen_store(engine, shared),
            oauth=AuthorizationServer.open(
                deployment, names.public_url, signing_keys, shared, failures
            ),
            jwks=JwksPublisher(signing_keys),
            crl=crl,
            certificates=CertificateStatus(crl.revokes, audit, settings.trust_domain),
            names=names,
            anchors=anchors,
            upstream_identity=upstream_identity,
            client_auth=client_auth,
            limits=limits,
            manifest_dir=manifest_dir,
            proxies=TrustedProxies.of(settings),
            privacy=privacy,
            notify_auth=notify_auth,
        )

    def upstreams(self, manifest: Manifest) -> Upstreams:
        """Connection pools to ``manifest``'s systems, TLS verified against their anchors."""
        return Upstreams(
            manifest,
            self.vault,
            self.anchors,
            self.metrics,
            self.limits,
            client_certificate=self.upstream_identity,
            revocation=self.crl,
        )

    def client_certificates(self, manifest: Manifest) -> ClientCertificates | None:
        """``manifest``'s clients by their certificates (None: the listener asks for none)."""
        if self.client_auth == "none":
            return None
        return ClientCertificates(manifest, self.certificates)

    def trust(self, manifest: Manifest) -> Callable[[str], ssl.SSLContext]:
        """How a CA a manifest names (a trusted issuer's) verifies, at its TLS floor."""
        min_version = manifest.tls.min_version
        return lambda ca: trust_context(ca, self.anchors, min_version, revocation=self.crl)

    def reveal_text(self, reference: str) -> str:
        """The vault's value of ``reference`` as text (business rules' database URLs)."""
        return self.vault.resolve(reference).reveal().decode()

    def backends(self, client_keys: ClientKeys, rules: Rules) -> Backends:
        """What a manifest's route stages use beyond the route: limits, stores, keys, rules."""
        return Backends(
            limiter=self.limiter,
            idempotency=self.idempotency,
            # Signed requests: clients' keys from the store, nonces single-use everywhere.
            signatures=RequestSignatures(client_keys, self.nonces),
            rules=rules,
            manifest_dir=self.manifest_dir,
            names=self.names,
        )

    def close(self) -> None:
        """Stop the authorization server's listeners; close the lineage index, audit log, Redis."""
        self.oauth.close()
        self.lineage.close()  # writes what is queued
        self.audit_log.close()
        if self.redis_client is not None:
            self.redis_client.close()

    async def aclose(self) -> None:
        """:meth:`close`, and the asyncio Redis client on the loop that owns its connections."""
        if self.redis_async is not None:
            await self.redis_async.aclose()
        self.close()


def build_gateway(
    services: GatewayServices,
    manifest: Manifest,
    upstreams: Upstreams | None = None,
    *,
    observer: RequestObserver | None = None,
) -> Gateway:
    """Everything that serves ``manifest``, from ``services`` (``upstreams``: new pools).

    ``observer`` hears of each request (:mod:`interlock.gateway.observer`; None: nobody).
    """
    deployment = services.deployment
    identity = ManifestIdentity.for_manifest(deployment.engine, deployment.keyring, manifest)
    certificates = services.client_certificates(manifest)
    oauth = services.oauth.for_manifest(
        manifest,
        keys=identity.client_keys,
        trust=services.trust(manifest),
        certificates=certificates,
    )
    authenticate = Authentication.for_manifest(
        identity, oauth, certificates, names=services.names, guessing=services.guessing
    )
    rules = Rules(manifest, services.reveal_text)
    forward = upstreams or services.upstreams(manifest)
    routes = RouteTable.compile(manifest)
    try:
        backends = services.backends(identity.client_keys, rules)
        pipelines = build_pipelines(routes, authenticate, forward, backends)
        endpoints = _endpoints(services, manifest, oauth, certificates, authenticate)
    except BaseException:
        rules.close()
        raise
    return Gateway(
        manifest,
        routes,
        pipelines,
        endpoints,
        forward,
        services.metrics,
        services.audit,
        keys=identity.api_keys,
        names=services.names,
        rules=rules,
        proxies=services.proxies,
        observer=observer,
    )


def _endpoints(
    services: GatewayServices,
    manifest: Manifest,
    oauth: OAuthForManifest,
    certificates: ClientCertificates | None,
    authenticate: Authentication,
) -> Endpoints:
    """The gateway's own endpoints, in the one order they are matched."""
    privacy = _privacy_mounts(services, manifest, authenticate)
    as2 = _as2_mounts(services, manifest)
    audit, metrics = services.audit, services.metrics
    return Endpoints(
        [
            Mount("/healthz", Health(), _HEALTH_METHODS),
            Mount("/readyz", _readiness(services), _HEALTH_METHODS),
            Mount(
                "/oauth2/token",
                OAuthForm(oauth.endpoint, "token", audit, metrics, certificates),
            ),
            Mount("/oauth2/revoke", OAuthForm(oauth.endpoint, "revoke", audit, metrics)),
            Mount("/oauth2/introspect", OAuthForm(oauth.endpoint, "introspect", audit, metrics)),
            Mount(
                VAULT_PREFIX,
                VaultEndpoint(VaultApi(services.vault), authenticate),
                prefix=True,
                below=VAULT_PREFIX + "/{name}",
            ),
            Mount("/.well-known/jwks.json", JwksEndpoint(services.jwks), GET),
            Mount(
                "/.well-known/oauth-authorization-server",
                AuthorizationMetadata(oauth.endpoint),
                GET,
            ),
            Mount("/pki/crl", CrlEndpoint(services.crl), GET),
            Mount("/pki/crl/all.pem", CrlEndpoint(services.crl, every_issuer=True), GET),
            *_messaging_mounts(services, manifest),
            *_schema_mounts(services, manifest, authenticate),
            *as2,
            *privacy,
        ]
    )


def _messaging_mounts(services: GatewayServices, manifest: Manifest) -> list[Mount]:
    """``/v1/messaging/{integration}/jwks.json`` when integrations have keys (messaging,
    sealed event streams)."""
    if not any(keyed_spec(flow) is not None for flow in manifest.integrations.values()):
        return []
    keys = MessagingKeys(services.deployment.engine, services.deployment.keyring)
    endpoint = MessagingKeysEndpoint(keys, manifest)
    return [Mount(MESSAGING_PREFIX, endpoint, GET, prefix=True, below=messaging_label)]


def _schema_mounts(
    services: GatewayServices, manifest: Manifest, authenticate: Authentication
) -> list[Mount]:
    """``/v1/schemas`` (the schema registry) when the manifest declares event subjects."""
    if not declared_subjects(manifest):
        return []
    registry = SchemaRegistry(services.deployment.engine, manifest, audit=services.audit_log.sink)
    return [
        Mount(
            SCHEMAS_PREFIX,
            SchemaApi(registry, authenticate, subject_producers(manifest)),
            prefix=True,
            below=schemas_label,
        )
    ]


def _as2_mounts(services: GatewayServices, manifest: Manifest) -> list[Mount]:
    """``/v1/as2/{integration}`` (and ``.../mdn``) when the manifest has AS2 integrations."""
    vault = services.vault
    endpoint = build_as2_endpoint(
        manifest,
        resolve=lambda reference: vault.resolve(reference).reveal(),
        anchors=services.anchors,
        manifest_dir=services.manifest_dir,
        files_root=services.deployment.settings.data_dir / "files",
        engine=services.deployment.engine,
        seen=services.nonces,
        audit=services.audit_log.sink,
        notify_auth=services.notify_auth,
    )
    if endpoint is None:
        return []
    return [Mount(AS2_PREFIX, endpoint, prefix=True, below=as2_label)]


async def resume_partner_notices(services: GatewayServices, manifest: Manifest) -> None:
    """At start: deliver the rejection reports to AS2 partners that a stop left undelivered."""
    inbound = [
        name
        for name, flow in manifest.integrations.items()
        if flow.files is not None
        and flow.files.transport == "as2"
        and flow.files.direction == "inbound"
    ]
    if not inbound:
        return
    vault = services.vault
    notifier = partner_notifier(
        manifest,
        root=services.deployment.settings.data_dir / "files",
        resolve=lambda reference: vault.resolve(reference).reveal(),
        anchors=services.anchors,
        audit=services.audit_log.sink,
        auth=services.notify_auth,
    )
    resumed = 0
    for name in inbound:  # one at a time: each waits out its own back-off
        try:
            resumed += await notifier.resume(name)
        except (InterlockError, OSError, ValueError) as exc:  # the audit log down, a bad state file
            _log.warning(
                "rejection reports not resumed", integration=name, error=type(exc).__name__
            )
    if resumed:
        _log.info("rejection reports to AS2 partners delivered again", reports=resumed)


def _privacy_mounts(
    services: GatewayServices, manifest: Manifest, authenticate: Authentication
) -> list[Mount]:
    """``/v1/privacy`` when the deployment serves data-subject requests."""
    if services.privacy is None:
        return []
    parts = PrivacyParts(
        engine=services.deployment.engine,
        keyring=services.deployment.keyring,
        audit=services.audit_log.sink,
        audit_engine=services.audit_log.store.engine,
        lineage=services.lineage,
        vault=services.vault,
        anchors=services.anchors,
    )
    api = services.privacy.api(parts, manifest)
    endpoint = PrivacyEndpoint(api, authenticate)
    return [Mount(PRIVACY_PREFIX, endpoint, prefix=True, below=privacy_label)]


def _readiness(services: GatewayServices) -> Readiness:
    """What ``/readyz`` checks: the store, the audit database, Redis if any, a signing key."""
    checks = {
        "store": engine_check(services.deployment.engine),
        "audit": engine_check(services.audit_log.store.engine),
    }
    shared = services.redis_client
    if shared is not None:
        checks["redis"] = shared.ping
    checks["signing_key"] = services.oauth.keys.signer
    status = services.manifest_status
    checks["manifest"] = status.check
    return Readiness(checks, facts=lambda: {"manifest": status.facts()})


def _limiter(
    redis_clients: tuple[redis.Redis | None, redis.asyncio.Redis | None],
    failure: FailureMode,
    metrics: GatewayMetrics,
    shares: int,
) -> Limiter:
    """One limiter per gateway: Redis (with the failure policy) when configured, else memory.

    ``redis_clients``: the synchronous client (the token endpoint's guard, in a
    thread) and the asyncio one (the routes' decisions, on the loop).
    ``shares``: in-process budgets are divided among that many processes (limits.scope).
    """
    shared, shared_async = redis_clients
    if shared is None:
        return MemoryLimiter(shares=shares)
    metrics.backend_up(True)
    fallback = MemoryLimiter(shares=shares)
    primary = RedisLimiter(shared, async_client=shared_async)
    return FailurePolicy(primary, failure, fallback=fallback, observer=metrics)
