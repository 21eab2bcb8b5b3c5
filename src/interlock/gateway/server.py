"""``interlock serve``: the HTTPS listener, its TLS, reload on SIGHUP, graceful shutdown.

What the gateway *does* is assembled in :mod:`interlock.gateway.assembly`; this
module binds the socket, builds the listener's TLS context and certificates,
swaps the gateway on reload and drains on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
from aiohttp import web

from interlock.config.loader import read_manifest
from interlock.config.manifest import Manifest
from interlock.crypto.pkix import load_certificate_pem
from interlock.errors import ConfigError, InterlockError, Refusal
from interlock.gateway.app import Gateway
from interlock.gateway.assembly import GatewayServices, build_gateway, resume_partner_notices
from interlock.gateway.blocking_pool import handling_request
from interlock.gateway.client_address import TrustedProxies
from interlock.gateway.connections import ConnectionLimits
from interlock.gateway.crl import CrlPublisher
from interlock.gateway.hosts import GatewayNames
from interlock.gateway.listener import ListenerSite, ProblemServer
from interlock.gateway.manifest_status import ManifestStatus, Source, file_sha256
from interlock.gateway.metrics_listener import (
    MetricsListener,
    metrics_tls,
    start_metrics_listener,
)
from interlock.gateway.observer import RequestObserver
from interlock.gateway.openssl import report_refused_certificates
from interlock.gateway.preflight import (
    check_port_free,
    missing_secrets,
    missing_secrets_error,
    port_error,
)
from interlock.gateway.privacy_runtime import PrivacyRuntime
from interlock.gateway.problems import problem_response
from interlock.gateway.proxy_listener import ProxyProtocolSite
from interlock.gateway.renewal import RenewingCertificate, keep_renewed
from interlock.gateway.tls import ClientAuth, server_context
from interlock.gateway.upstream import UpstreamLimits, Upstreams
from interlock.logs import get_logger
from interlock.pki import LOCAL_CA_NAME
from interlock.pki.authority import Pki
from interlock.privacy.lineage import keep_pruned
from interlock.store import Deployment
from interlock.validation.artifacts import route_artifacts

__all__ = [
    "Front",
    "ListenerConfig",
    "RunningGateway",
    "check_secrets",
    "refusal_reason",
    "run_event_loop",
    "serve_forever",
    "start_gateway",
]

_log = get_logger("interlock.gateway")
SHUTDOWN_GRACE: Final = 15.0
_GC_THRESHOLDS: Final = (10_000, 20, 20)
# Request limits: request line and each header line 8 KiB, at most 100 headers.
MAX_LINE: Final = 8190
# Room for an over-long bearer token to reach the token size cap (a 401), not the parser (a 400).
MAX_FIELD: Final = 16384
MAX_HEADERS: Final = 100
_TLS_FLOORS: Final = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


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
    # The metrics listener's (host, port): INTERLOCK_METRICS_LISTEN for serve; None: none.
    metrics: tuple[str, int] | None = None


class Front:
    """The listener's one handler: each request goes to the gateway of the current manifest.

    A reload swaps :attr:`current`; requests in flight finish on the gateway
    they started on. Until the first gateway is set (the moments between
    binding the socket and assembling it) requests are answered 503.
    """

    def __init__(self) -> None:
        """No gateway yet."""
        self.current: Gateway | None = None
        # Store mode: while the current manifest version cannot be loaded, every request
        # but /healthz is answered 503 (docs/scale.md).
        self.manifest: ManifestStatus | None = None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer ``request`` with the current gateway."""
        gateway = self.current
        if gateway is None:
            starting = Refusal("service-starting", "the gateway is starting; retry shortly")
            return problem_response(starting, os.urandom(16).hex(), request.path)
        manifest = self.manifest
        if manifest is not None and manifest.refusing is not None and request.path != "/healthz":
            if request.path == "/readyz":  # says why, with the version enforced
                return await gateway.handle(request)
            stale = Refusal("not-ready", "this replica cannot load the current manifest version")
            return await gateway.handle(request, refuse=stale)  # on the trail like any refusal
        with handling_request():  # its blocking calls may be refused when the pool is full
            return await gateway.handle(request)

    def refused(self, request: web.BaseRequest, status: int, correlation_id: str) -> None:
        """Record an answer the listener gave itself (a request its parser refused)."""
        gateway = self.current
        if gateway is not None:
            gateway.unparsed(request, status, correlation_id)


@dataclass
class RunningGateway:
    """A started gateway: its address, and how to reload or stop it.

    Made with everything it serves with; :meth:`start` then serves the first
    manifest and opens the metrics listener, and :meth:`track` runs background work.
    """

    front: Front
    services: GatewayServices
    runner: web.ServerRunner
    port: int
    ca_file: Path
    manifest_path: Path | None
    # The listener's TLS context; a manifest's tls.min_version is applied to it, so
    # new handshakes follow a reload (as a renewed certificate does).
    listener_tls: ssl.SSLContext
    # The certificates the gateway presents, by role ("listener", "upstream-client").
    certificates: dict[str, RenewingCertificate]
    _tmp: tempfile.TemporaryDirectory[str]
    _loop: asyncio.AbstractEventLoop
    # Hears of each request, whichever manifest's gateway answers it (None: nobody).
    observer: RequestObserver | None = None
    # Opened by start() when the listener config names an address (None: none).
    metrics_listener: MetricsListener | None = field(default=None, init=False)
    # Replaces the file reload on SIGHUP (store mode, set by follow()).
    _reloader: Callable[[], bool] | None = field(default=None, init=False)
    _retired: set[Gateway] = field(default_factory=set, init=False)
    _closers: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.front.manifest = self.services.manifest_status

    async def start(
        self,
        manifest: Manifest,
        enforced: tuple[Source, int | None, str],
        metrics: tuple[str, int] | None,
    ) -> None:
        """Serve ``manifest`` (its secrets in the vault), record it as ``enforced``,
        and open the metrics listener on ``metrics`` (None: none).

        Stops the gateway (everything opened so far) if any of it fails.
        """
        try:
            await asyncio.to_thread(check_secrets, self.services, manifest)
            self.replace(manifest)
            self.enforce(*enforced)
            if metrics is not None:
                host, port = metrics
                self.metrics_listener = await start_metrics_listener(
                    self.services.metrics, host, port, metrics_tls(host, self.listener_tls)
                )
        except BaseException:
            await self.stop()
            raise

    def follow(self, reload: Callable[[], bool], work: Coroutine[Any, Any, None]) -> None:
        """Take manifests from elsewhere (the store): ``reload`` answers SIGHUP instead of
        re-reading the file, and ``work``, which follows that source, runs until the stop."""
        self._reloader = reload
        self.track(work)

    @property
    def gateway(self) -> Gateway:
        """The gateway of the manifest being served."""
        current = self.front.current
        if current is None:  # start_gateway sets it before returning
            raise RuntimeError("the gateway is not assembled yet")
        return current

    def reload(self) -> bool:
        """Re-read the manifest; keep the old one (and log why) if it is invalid."""
        if self._reloader is not None:
            return self._reloader()
        if self.manifest_path is None:
            return False
        audit = self.services.audit
        try:
            # The hash is of the bytes parsed: the file may change after it was read.
            loaded = read_manifest(self.manifest_path, route_artifacts)
            check_secrets(self.services, loaded.manifest)
            self.replace(loaded.manifest)
        except Exception as exc:  # noqa: BLE001  every refusal is logged and audited
            reason = refusal_reason(exc)
            _log.error("manifest reload refused; still serving the previous one", error=reason)
            audit.reload(str(self.manifest_path), reason)
            self.services.metrics.manifest_reload_failed("file")
            return False
        _log.info("manifest reloaded", path=str(self.manifest_path))
        audit.reload(str(self.manifest_path), None)
        self.enforce("file", None, loaded.sha256)
        return True

    def enforce(self, source: Source, version: int | None, sha256: str) -> None:
        """Record the manifest now served (for /readyz and the metrics); traffic flows."""
        status = self.services.manifest_status
        status.enforce(source, version, sha256)
        self.services.metrics.manifest(source, version, sha256, current=True)

    def refuse(self, reason: str) -> None:
        """Answer 503 (not ready) until a manifest is enforced again."""
        status = self.services.manifest_status
        status.refuse(reason)
        self.services.metrics.manifest(status.source, status.version, status.sha256, current=False)

    def track(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background until the gateway stops."""
        self._tasks.append(self._loop.create_task(work))

    def replace(self, manifest: Manifest, upstreams: Upstreams | None = None) -> None:
        """Serve ``manifest`` from now on, assembled afresh (``upstreams``: new pools).

        Requests in flight finish on the gateway they started on, which is
        closed only after they have had as long as any request may take.
        """
        old = self.front.current
        self.front.current = build_gateway(
            self.services, manifest, upstreams, observer=self.observer
        )
        _apply_tls_floor(self.listener_tls, manifest.tls.min_version)
        if old is not None:
            self._retired.add(old)
            # From the loop (SIGHUP) or another thread (a test, an admin call) alike.
            self._loop.call_soon_threadsafe(self._schedule_close, old)

    def _schedule_close(self, gateway: Gateway) -> None:
        task = self._loop.create_task(self._close_later(gateway))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _close_later(self, gateway: Gateway) -> None:
        await asyncio.sleep(SHUTDOWN_GRACE + self.services.limits.read_seconds)
        self._retired.discard(gateway)
        await gateway.close()

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), close everything."""
        if self.metrics_listener is not None:
            await self.metrics_listener.stop()
        await self.runner.cleanup()
        for task in [*self._closers, *self._tasks]:
            task.cancel()
        for gateway in (self.front.current, *self._retired):
            if gateway is not None:
                await gateway.close()
        self._retired.clear()
        await self.services.aclose()
        self._tmp.cleanup()


async def start_gateway(
    deployment: Deployment,
    manifest: Manifest,
    listener: ListenerConfig,
    manifest_path: Path | None = None,
    *,
    privacy: PrivacyRuntime | None = None,
    stored: tuple[int, str] | None = None,
    observer: RequestObserver | None = None,
    notify_auth: Callable[[], httpx.Auth] | None = None,
) -> RunningGateway:
    """Start serving ``manifest`` on ``listener``; returns once the socket is bound.

    ``stored``: the manifest is that (version, SHA-256) from the store (None: the file).

    ``privacy`` serves ``/v1/privacy`` and runs the due work of data-subject
    requests in the background (None: neither). ``observer`` hears of each request
    (:mod:`interlock.gateway.observer`; the demo prints a line for each).
    ``notify_auth`` signs the webhooks that tell AS2 partners of refused files
    (RFC 9421; None: the webhook way fails, audited); reports a stop left
    undelivered are delivered again at start.

    A port in use, or a ``secret://`` value the vault lacks (unless
    ``INTERLOCK_MISSING_SECRETS=start``), is a :class:`ConfigError` naming it;
    the port is checked before any certificate is issued.
    """
    _check_ports(listener)
    tmp = tempfile.TemporaryDirectory(prefix="tls-", dir=deployment.settings.data_dir)
    try:
        tls = await _listener_tls(deployment, manifest, listener, Path(tmp.name))
        bound = await _bind(deployment, listener, tls.context)
    except BaseException:
        tmp.cleanup()
        raise
    try:
        services = await _open_services(
            deployment, listener, bound.port, tls, manifest_path, privacy, notify_auth
        )
    except BaseException:
        await bound.runner.cleanup()
        tmp.cleanup()
        raise
    running = RunningGateway(
        front=bound.front,
        services=services,
        runner=bound.runner,
        port=bound.port,
        ca_file=tls.ca_file,
        manifest_path=manifest_path,
        listener_tls=tls.context,
        certificates={certificate.name: certificate for certificate in tls.renewing},
        _tmp=tmp,
        _loop=asyncio.get_running_loop(),
        observer=observer,
    )
    await running.start(manifest, _enforced(manifest_path, stored), listener.metrics)
    _log.info(
        "gateway listening",
        host=listener.host,
        port=bound.port,
        routes=len(running.gateway.routes.routes),
    )
    _start_background(running, tls, manifest, privacy)
    return running


@dataclass(frozen=True)
class _Bound:
    """The bound listener: its one handler, its runner and the port it got."""

    front: Front
    runner: web.ServerRunner
    port: int


async def _bind(
    deployment: Deployment, listener: ListenerConfig, context: ssl.SSLContext
) -> _Bound:
    """Bind the listener with its connection limits and parser caps (503 until a gateway).

    A port taken since :func:`_check_ports` is a :class:`ConfigError` naming it.
    """
    front = Front()
    connections = ConnectionLimits.from_settings(deployment.settings)
    server = ProblemServer(
        front.handle,
        connections,
        refused=front.refused,
        access_log=None,
        max_line_size=MAX_LINE,
        max_field_size=MAX_FIELD,
        max_headers=MAX_HEADERS,
    )
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    site = _site(runner, deployment, listener, context, connections)
    try:
        await site.start()
    except OSError as exc:  # taken since the check
        await runner.cleanup()
        raise port_error(listener.host, listener.port, exc) from None
    return _Bound(front, runner, _bound_port(runner, listener.port))


async def _open_services(  # noqa: PLR0917  (start_gateway's parts, handed over once)
    deployment: Deployment,
    listener: ListenerConfig,
    port: int,
    tls: _ListenerTls,
    manifest_path: Path | None,
    privacy: PrivacyRuntime | None,
    notify_auth: Callable[[], httpx.Auth] | None,
) -> GatewayServices:
    """Open what lives as long as the process, for the listener bound on ``port``."""
    issuer = deployment.settings.public_url or f"https://{_url_host(listener.host)}:{port}"
    # The names it answers for: its public URL's host (in GatewayNames) and those its
    # own certificate carries.
    names = GatewayNames(issuer, _listener_names(listener))
    services = await GatewayServices.open(
        deployment,
        names,
        tls.crl,
        {f"pki:{LOCAL_CA_NAME}": tls.ca_file},
        tls.upstream_identity,
        tls.client_auth,
        listener.limits,
        manifest_path.parent if manifest_path is not None else None,
        privacy=privacy,
        notify_auth=notify_auth,
    )
    # Certificates the handshake refuses (revoked, expired) are logged and audited too.
    if tls.client_auth != "none" and not report_refused_certificates(
        tls.context, services.certificates.refused_at_handshake
    ):
        _log.warning("client certificates refused at the handshake are not logged or audited")
    return services


def _start_background(
    running: RunningGateway,
    tls: _ListenerTls,
    manifest: Manifest,
    privacy: PrivacyRuntime | None,
) -> None:
    """The gateway's background work, until it stops (:meth:`RunningGateway.track`)."""
    services = running.services
    audit = services.audit
    running.track(
        services.oauth.maintain(lambda kid: audit.lifecycle("signing_key.rotate", {"kid": kid}))
    )
    running.track(tls.crl.watch())
    # Lineage rows past their integration's retention: at start, then hourly.
    running.track(keep_pruned(services.lineage))
    # Rejection reports to AS2 partners left undelivered by a stop (at least once).
    running.track(resume_partner_notices(services, manifest))
    running.track(
        keep_renewed(
            list(tls.renewing),
            tls.authorities,
            services.metrics,
            renewed=lambda certificate: audit.lifecycle(
                "certificate.renew",
                {
                    "certificate": certificate.name,
                    "serial": certificate.current.serial if certificate.current else "",
                },
            ),
        )
    )
    if privacy is not None:  # the due work of data-subject requests, every few seconds
        running.track(privacy.run())


def _enforced(
    manifest_path: Path | None, stored: tuple[int, str] | None
) -> tuple[Source, int | None, str]:
    """What the first manifest is: a stored (version, hash), or the file's hash."""
    if stored is not None:
        return "store", *stored
    return "file", None, file_sha256(manifest_path) if manifest_path is not None else ""


def _check_ports(listener: ListenerConfig) -> None:
    """The listener's port and the metrics port are free (before anything is issued)."""
    check_port_free(listener.host, listener.port, reuse_port=listener.reuse_port)
    if listener.metrics is not None:
        try:
            check_port_free(*listener.metrics)
        except ConfigError as exc:
            raise ConfigError(
                f"metrics: {exc.message}; set INTERLOCK_METRICS_LISTEN to another HOST:PORT, "
                "or to off"
            ) from None


def _site(
    runner: web.ServerRunner,
    deployment: Deployment,
    listener: ListenerConfig,
    context: ssl.SSLContext,
    connections: ConnectionLimits,
) -> web.BaseSite:
    """The listening site: PROXY v2 from trusted proxies, or plain TLS."""
    if deployment.settings.proxy_protocol == "v2":  # TCP balancers in passthrough: proxies.md
        return ProxyProtocolSite(
            runner,
            listener.host,
            listener.port,
            ssl_context=context,
            proxies=TrustedProxies.of(deployment.settings),
            backlog=1024,
            reuse_port=listener.reuse_port,
            handshake_seconds=connections.first_byte_seconds,
        )
    return ListenerSite(
        runner,
        listener.host,
        listener.port,
        ssl_context=context,
        backlog=1024,
        reuse_port=listener.reuse_port or None,
        handshake_seconds=connections.first_byte_seconds,
    )


def _apply_tls_floor(context: ssl.SSLContext, min_version: str) -> None:
    """Set the listener's lowest TLS version: handshakes from now on use it, open ones keep theirs.

    OpenSSL copies the context's version bounds into each connection when it is
    made, so changing them on the live context needs no new listener.
    """
    floor = _TLS_FLOORS[min_version]
    if context.minimum_version != floor:
        context.minimum_version = floor
        _log.info("listener TLS minimum changed; new connections use it", min_version=min_version)


def refusal_reason(exc: BaseException) -> str:
    """Why a manifest was not taken, in one line for the log and the audit trail.

    An InterlockError says it itself; an OSError (a ``file:`` the manifest names,
    missing or not PEM) gives its type and what the system said; anything else
    only its type, since its text may carry a value from the manifest.
    """
    if isinstance(exc, InterlockError):
        return str(exc)[:2000]
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot assemble the gateway: {type(exc).__name__}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.args:  # ssl.SSLError: its OpenSSL reason
        return f"cannot assemble the gateway: {type(exc).__name__}: {exc.args[-1]}"
    return f"cannot assemble the gateway: {type(exc).__name__}"


def check_secrets(services: GatewayServices, manifest: Manifest) -> None:
    """Refuse ``manifest`` if the vault lacks a ``secret://`` value it names.

    With ``INTERLOCK_MISSING_SECRETS=start`` each missing one is logged instead;
    the routes that need it answer a generic 503 until it is stored.
    """
    missing = missing_secrets(manifest, services.vault)
    if not missing:
        return
    if services.deployment.settings.missing_secrets == "refuse":
        raise missing_secrets_error(missing)
    for found in missing:
        _log.error(
            "secret missing from the vault; the routes that need it answer 503 until it is stored",
            reference=found.reference,
            where=found.where,
        )


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
        hosts = _listener_names(listener)
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


def _listener_names(listener: ListenerConfig) -> tuple[str, ...]:
    """The listener's host names: its address, localhost and the extra hosts."""
    return tuple(dict.fromkeys((listener.host, "localhost", *listener.extra_hosts)))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bound_port(runner: web.ServerRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested
