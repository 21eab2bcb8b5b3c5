"""``interlock serve``: the HTTPS listener, reload on SIGHUP, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import signal
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import redis
from aiohttp import web

from interlock.audit.service import AuditLog
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.crypto.pkix import load_certificate_pem
from interlock.errors import ConfigError, InterlockError
from interlock.gateway.app import Gateway
from interlock.gateway.audit_trail import GatewayAudit
from interlock.gateway.authorization import enable_oauth
from interlock.gateway.crl import CrlPublisher
from interlock.gateway.guessing import GuessingGuard
from interlock.gateway.listener import ProblemServer
from interlock.gateway.metrics import GatewayMetrics
from interlock.gateway.mtls import ClientCertificates
from interlock.gateway.pipeline import Backends
from interlock.gateway.renewal import RenewingCertificate, keep_renewed
from interlock.gateway.tls import ClientAuth, server_context
from interlock.gateway.upstream import UpstreamLimits, Upstreams
from interlock.gateway.vault_api import VaultApi
from interlock.identity.apikeys import ApiKeys
from interlock.limits import (
    FailureGuard,
    FailureMode,
    FailurePolicy,
    Limiter,
    MemoryLimiter,
    RedisLimiter,
)
from interlock.logs import get_logger
from interlock.oauth.jwks import JwksPublisher
from interlock.oauth.signing_keys import SigningKeys
from interlock.pki import LOCAL_CA_NAME
from interlock.pki.authority import Pki
from interlock.replay.idempotency import idempotency_store
from interlock.replay.seen import seen_store
from interlock.replay.signature_keys import SignatureKeys
from interlock.replay.signatures import RequestSignatures
from interlock.secrets.vault import Vault
from interlock.store import Deployment
from interlock.store.redis_client import connect_redis

__all__ = ["ListenerConfig", "RunningGateway", "run_event_loop", "serve_forever", "start_gateway"]

_log = get_logger("interlock.gateway")
SHUTDOWN_GRACE: Final = 15.0
_GC_THRESHOLDS: Final = (10_000, 20, 20)
# Request limits: request line and each header line 8 KiB, at most 100 headers.
MAX_LINE: Final = 8190
# Room for an over-long bearer token to reach the token size cap (a 401), not the parser (a 400).
MAX_FIELD: Final = 16384
MAX_HEADERS: Final = 100


@dataclass(frozen=True)
class ListenerConfig:
    """Where and how the gateway listens."""

    host: str = "127.0.0.1"
    port: int = 8443
    certificate: Path | None = None  # None: "auto", issued by the local CA
    private_key: Path | None = None
    extra_hosts: tuple[str, ...] = ()
    reuse_port: bool = False  # several processes on one port: the kernel spreads connections
    # Client certificates (mutual TLS): none, optional or required; verified against
    # client_ca, by default the deployment's own CA (with its revocation list).
    client_auth: ClientAuth | None = None
    client_ca: Path | None = None
    limits: UpstreamLimits = field(default_factory=UpstreamLimits)


@dataclass
class RunningGateway:
    """A started gateway: its address, and how to reload or stop it."""

    gateway: Gateway
    runner: web.ServerRunner
    port: int
    ca_file: Path
    manifest_path: Path | None
    _make_upstreams: Callable[[Manifest], Upstreams]
    _tmp: tempfile.TemporaryDirectory[str]
    _retired: list[Upstreams] = field(default_factory=list)
    _closers: set[asyncio.Task[None]] = field(default_factory=set)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # The certificates the gateway presents, by role ("listener", "upstream-client").
    certificates: dict[str, RenewingCertificate] = field(default_factory=dict)
    _on_stop: list[Callable[[], None]] = field(default_factory=list)

    def reload(self) -> bool:
        """Re-read the manifest; keep the old one (and log why) if it is invalid."""
        if self.manifest_path is None:
            return False
        try:
            manifest = load_manifest(self.manifest_path)
            old = self.gateway.upstreams
            self.gateway.replace(manifest, self._make_upstreams(manifest))
        except InterlockError as exc:
            _log.error("manifest reload refused; still serving the previous one", error=str(exc))
            if self.gateway.audit is not None:
                self.gateway.audit.reload(str(self.manifest_path), str(exc))
            return False
        # Requests in flight still use the old pools: close them only after they
        # have had as long as any request may take.
        self._retired.append(old)
        task = asyncio.get_running_loop().create_task(self._close_later(old))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)
        _log.info("manifest reloaded", path=str(self.manifest_path))
        if self.gateway.audit is not None:
            self.gateway.audit.reload(str(self.manifest_path), None)
        return True

    async def _close_later(self, upstreams: Upstreams) -> None:
        await asyncio.sleep(SHUTDOWN_GRACE + upstreams.limits.read_seconds)
        self._retired.remove(upstreams)
        await upstreams.close()

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), close pools."""
        await self.runner.cleanup()
        for task in [*self._closers, *self._tasks]:
            task.cancel()
        for close in self._on_stop:
            close()
        for upstreams in (self.gateway.upstreams, *self._retired):
            await upstreams.close()
        self._retired.clear()
        self._tmp.cleanup()


async def start_gateway(
    deployment: Deployment,
    manifest: Manifest,
    listener: ListenerConfig,
    manifest_path: Path | None = None,
) -> RunningGateway:
    """Start serving ``manifest`` on ``listener``; returns once the socket is bound."""
    tmp = tempfile.TemporaryDirectory(prefix="tls-", dir=deployment.settings.data_dir)
    try:
        tls = await _listener_tls(deployment, manifest, listener, Path(tmp.name))
    except BaseException:
        tmp.cleanup()
        raise
    ssl_context, crl, ca_file = tls.context, tls.crl, tls.ca_file

    metrics = GatewayMetrics()
    anchors = {f"pki:{LOCAL_CA_NAME}": ca_file}

    def make_upstreams(current: Manifest) -> Upstreams:
        return Upstreams(
            current,
            secrets,
            anchors,
            metrics,
            listener.limits,
            client_certificate=tls.upstream_identity,
        )

    keys = ApiKeys(deployment.engine, deployment.keyring, manifest)
    settings = deployment.settings
    signing_keys = SigningKeys(deployment.engine, deployment.keyring, settings.oauth_signing_alg)
    signing_keys.ensure()  # the first key exists before anyone asks for the JWKS
    certificates = (
        ClientCertificates(settings.trust_domain, manifest) if tls.client_auth != "none" else None
    )
    shared = connect_redis(settings)
    limiter = _limiter(shared, settings.rate_limit_failure, metrics)
    # Failed authentications per address: one budget for the token endpoint and the routes.
    failures = FailureGuard(limiter, per_address=settings.auth_failures_per_ip)
    # The audit trail: its own database (INTERLOCK_AUDIT_DATABASE_URL), set at deploy time only.
    audit_log = await asyncio.to_thread(
        functools.partial(AuditLog.open, settings, deployment.keyring, heartbeat=True)
    )
    audit = GatewayAudit(audit_log.sink)
    # Outbound credentials: resolved through the vault, every read on the audit trail.
    secrets = Vault(deployment.engine, deployment.keyring, audit=audit_log.sink)
    gateway = Gateway(
        manifest,
        keys,
        make_upstreams(manifest),
        metrics,
        JwksPublisher(signing_keys),
        certificates=certificates,
        backends=Backends(
            limiter=limiter,
            # Idempotency-Key records: Redis when configured, else the store (SQLite or PostgreSQL).
            idempotency=idempotency_store(deployment.engine, shared),
            # Signed requests: clients' keys from the store; nonces single-use across replicas.
            signatures=RequestSignatures(
                SignatureKeys(deployment.engine, deployment.keyring, manifest),
                seen_store(deployment.engine, shared),
            ),
            manifest_dir=manifest_path.parent if manifest_path is not None else None,
        ),
        guessing=GuessingGuard(failures),
        rule_database=lambda reference: secrets.resolve(reference).reveal().decode(),
        audit=audit,
    )
    gateway.vault = VaultApi(secrets)
    server = ProblemServer(
        gateway.handle,
        access_log=None,
        max_line_size=MAX_LINE,
        max_field_size=MAX_FIELD,
        max_headers=MAX_HEADERS,
    )
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    site = web.TCPSite(
        runner,
        listener.host,
        listener.port,
        ssl_context=ssl_context,
        backlog=1024,
        reuse_port=listener.reuse_port or None,
    )
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        tmp.cleanup()
        gateway.close()
        audit_log.close()
        if shared is not None:
            shared.close()
        raise
    port = _bound_port(runner, listener.port)
    issuer = deployment.settings.public_url or f"https://{_url_host(listener.host)}:{port}"
    oauth = enable_oauth(gateway, deployment, issuer, signing_keys, anchors, shared, failures)
    _log.info(
        "gateway listening",
        host=listener.host,
        port=port,
        routes=len(gateway._compiled.routes.routes),
    )
    running = RunningGateway(gateway, runner, port, ca_file, manifest_path, make_upstreams, tmp)
    gateway.crl = crl
    running.certificates = {certificate.name: certificate for certificate in tls.renewing}
    loop = asyncio.get_running_loop()
    running._tasks += [
        loop.create_task(oauth.maintain()),
        loop.create_task(crl.watch()),
        loop.create_task(
            keep_renewed(
                list(tls.renewing),
                tls.authorities,
                metrics,
                renewed=lambda certificate: audit.lifecycle(
                    "certificate.renew",
                    {
                        "certificate": certificate.name,
                        "serial": certificate.current.serial if certificate.current else "",
                    },
                ),
            )
        ),
    ]
    running._on_stop += [oauth.close, gateway.close, audit_log.close]
    return running


@dataclass(frozen=True)
class _ListenerTls:
    context: ssl.SSLContext
    crl: CrlPublisher
    ca_file: Path
    client_auth: ClientAuth
    pki: Pki
    renewing: tuple[RenewingCertificate, ...]  # the listener's own (if auto), upstream client

    @property
    def upstream_identity(self) -> RenewingCertificate:
        return self.renewing[-1]

    def authorities(self) -> dict[str, datetime]:
        """When the CAs the gateway trusts and issues from expire."""
        root = self.pki.root_certificate()
        issuing = load_certificate_pem(self.pki.chain_pem())
        return {"root-ca": root.not_valid_after_utc, "issuing-ca": issuing.not_valid_after_utc}


async def _listener_tls(
    deployment: Deployment, manifest: Manifest, listener: ListenerConfig, work: Path
) -> _ListenerTls:
    """The listener's TLS context: its certificate, and client certificates if asked for."""
    domain = deployment.settings.trust_domain
    pki = Pki(deployment.engine, deployment.keyring, deployment.deployment_id, domain)
    await asyncio.to_thread(pki.ensure)
    ca_file = deployment.settings.data_dir / "ca.pem"
    ca_file.write_bytes(pki.root_certificate_pem())  # what clients trust
    client_auth = listener.client_auth or ("optional" if listener.client_ca else "none")
    client_ca = listener.client_ca or (ca_file if client_auth != "none" else None)
    # Client certificates from our own PKI are checked against its revocation list.
    own_pki = client_auth != "none" and listener.client_ca is None
    crl = CrlPublisher(pki, work)
    await asyncio.to_thread(crl.refresh)
    try:
        context = server_context(
            listener.certificate,
            listener.private_key,
            manifest.tls.min_version,
            client_ca,
            client_auth=client_auth,
            crl=crl.pem_path if own_pki else None,
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the listener certificate: {exc}") from None
    renewing = []
    if listener.certificate is None or listener.private_key is None:
        # "auto": issued by the deployment's PKI for the listener's names, renewed in place.
        hosts = tuple(dict.fromkeys((listener.host, "localhost", *listener.extra_hosts)))
        own = RenewingCertificate("listener", lambda: pki.issue_server(hosts, ephemeral=True), work)
        await asyncio.to_thread(own.attach, context)
        renewing.append(own)
    identity = f"spiffe://{domain}/gateway"
    renewing.append(
        RenewingCertificate(
            "upstream-client",
            lambda: pki.issue_client_identity(identity, name="gateway", ephemeral=True),
            work,
        )
    )
    if own_pki:
        crl.attach(context)
    return _ListenerTls(context, crl, ca_file, client_auth, pki, tuple(renewing))


async def serve_forever(
    running: RunningGateway, on_ready: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Serve until SIGINT/SIGTERM; reload the manifest on SIGHUP."""
    # Everything allocated so far (modules, manifest, pools) lives as long as the
    # process: freeze it out of the cyclic collector, and collect the young
    # generation less often: most per-request garbage is freed by reference counting.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, running.reload)
    try:
        if on_ready is not None:
            await on_ready()
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        _log.info("shutting down; draining requests in flight")
        await running.stop()


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where available (its C TLS transport is several times
    faster than asyncio's), else on the standard loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(main)
        return
    uvloop.run(main)


def _limiter(shared: redis.Redis | None, failure: FailureMode, metrics: GatewayMetrics) -> Limiter:
    """One limiter per gateway: Redis (with the failure policy) when configured, else memory."""
    if shared is None:
        return MemoryLimiter()
    metrics.backend_up(True)
    return FailurePolicy(RedisLimiter(shared), failure, observer=metrics)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bound_port(runner: web.ServerRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested
