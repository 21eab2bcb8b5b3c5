"""``interlock demo``: a fresh deployment, a sample ERP, the gateway, and a walkthrough.

In a new data directory it initialises a deployment, starts a sample "ERP
orders" service over HTTPS (certificate from the deployment's local CA),
stores the ERP's credential in the secret store, starts the gateway with the
example manifest pointed at the sample ERP, issues an API key and walks
through allowed and refused calls. Then the privacy walkthrough: the order
call put the customer's e-mail address in the lineage index (a keyed hash),
the privacy desk traces her, exports her data and erases it through the
sample ERP's signed webhook, and the erasure's receipt is verified offline.
It ends with the security checklist's summary per integration (``interlock check``).
Then it keeps serving, prints commands to try and a line per request, until
Ctrl-C or SIGTERM (:mod:`interlock.cli.demo_serving`); ``--once`` exits after
the walkthrough. Either way it says what it deleted, or, with ``--keep``, where
the data directory is and how to use it again. With ``--edge`` nginx carries
the bytes and Interlock decides (:mod:`interlock.cli.demo_edge`).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

import aiohttp
import typer

from interlock.actors import Operator
from interlock.audit.service import AuditLog
from interlock.check.run import run_check
from interlock.cli import demo_edge
from interlock.cli.check import summary_table
from interlock.cli.context import console, settings, state
from interlock.cli.demo_privacy import privacy_walkthrough
from interlock.cli.demo_serving import RequestLines, Stop, farewell, stop_on_signals, try_it
from interlock.cli.privacy_wiring import privacy_factory, request_signer
from interlock.cli.render import integration_table, register_table, route_table, system_table
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.crypto.keyfile import write_private_file
from interlock.errors import ConfigError
from interlock.gateway import tls
from interlock.gateway.preflight import check_port_free
from interlock.gateway.privacy_runtime import PrivacyRuntime
from interlock.gateway.server import (
    ListenerConfig,
    RunningGateway,
    run_event_loop,
    start_gateway,
)
from interlock.identity.apikeys import ApiKeys
from interlock.identity.client_secrets import ClientSecrets
from interlock.logs import configure_logging
from interlock.oauth.signing_keys import SigningKeys
from interlock.outbound import Timeouts, outbound_async_client
from interlock.pki import ensure_local_ca
from interlock.privacy.ropa import Register, build_register
from interlock.privacy.ropa_html import to_html
from interlock.sdk import ClientCredentials, InterlockAuth
from interlock.secrets.vault import Vault
from interlock.store import Deployment, initialise
from interlock.testing.sample_erp import SampleErp, start_sample_erp

__all__ = ["demo"]

DEMO_CLIENT = "order-sync"
_METRICS: Final = ("127.0.0.1", 0)  # the demo's metrics: loopback, any free port


def demo(
    manifest: Annotated[Path, typer.Argument(help="Manifest to serve.")] = Path(
        "examples/interlock.yaml"
    ),
    once: Annotated[
        bool, typer.Option("--once", help="Exit after the walkthrough instead of serving.")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="Gateway port (0: any free one).")] = 8443,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the demo's data directory afterwards.")
    ] = False,
    edge: Annotated[
        bool,
        typer.Option(
            "--edge", help="nginx carries the bytes, Interlock decides (--port: nginx's)."
        ),
    ] = False,
) -> None:
    """Run the gateway on a fresh deployment with a sample ERP, and show it working."""
    loaded = load_manifest(manifest)
    nginx = demo_edge.nginx_binary() if edge else None  # missing: one line, nothing started
    # Given with --data-dir, or by INTERLOCK_DATA_DIR itself (older Typer releases leave the
    # option unset when only the environment names it): never the demo's to delete.
    state.data_dir = state.data_dir or os.environ.get("INTERLOCK_DATA_DIR") or None
    fresh = state.data_dir is None
    if fresh:
        state.data_dir = tempfile.mkdtemp(prefix="interlock-demo-")  # created 0700
    data_dir = Path(state.data_dir or "")
    stop = Stop()
    try:
        # The demo serves the ERP only: the example's other systems and rules name
        # secrets nobody stored, and their routes answer 503 (logged at start).
        current = settings().model_copy(update={"missing_secrets": "start"})
        if nginx is not None:
            port = demo_edge.nginx_port(port)
            current = demo_edge.edge_settings(current, port)
        deployment = initialise(current)
        if not state.debug:
            # The walkthrough is the output; access logs would drown it.
            configure_logging("warning", deployment.settings.log_format)
        try:
            run_event_loop(
                _demo(
                    deployment,
                    loaded,
                    _Run(
                        once=once,
                        port=port,
                        source=manifest,
                        deletes=fresh and not keep,
                        nginx=nginx,
                    ),
                    stop,
                )
            )
        finally:
            deployment.close()
    finally:
        if fresh:
            farewell(data_dir, keep=keep, manifest=manifest)
        else:
            console.print(
                f"kept the data directory {data_dir} (given with --data-dir or "
                "INTERLOCK_DATA_DIR): the demo's keys, secrets and audit entries are in it",
                markup=False,
                soft_wrap=True,
            )
    if stop.signal is not None and not stop.serving:
        raise typer.Exit(130)  # interrupted before the walkthrough ended


@dataclass(frozen=True)
class _Run:
    """How this demo runs: ``once`` or serving on ``port``, ``source`` the manifest's file."""

    once: bool
    port: int
    source: Path
    deletes: bool  # the data directory is deleted at the end
    nginx: str | None = None  # --edge: nginx's binary


async def _demo(deployment: Deployment, manifest: Manifest, run: _Run, stop: Stop) -> None:
    """The walkthrough, then serving until ``stop`` (SIGINT or SIGTERM, which also cut it short)."""
    work = asyncio.create_task(_walkthrough_and_serve(deployment, manifest, run, stop))
    with stop_on_signals(stop, work):
        try:
            await work
        except asyncio.CancelledError:
            if not work.cancelled() or stop.signal is None:
                raise  # not cancelled by a signal of ours


async def _walkthrough_and_serve(
    deployment: Deployment, manifest: Manifest, run: _Run, stop: Stop
) -> None:
    data_dir = deployment.settings.data_dir
    source = run.source
    # The register of the manifest as written (before the ERP is pointed at the sample).
    register = build_register(
        manifest,
        source=str(source),
        kek_backend=deployment.settings.kek_backend,
        now=datetime.now(UTC),
    )
    ca = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id)
    erp_token = secrets.token_urlsafe(32)
    log = AuditLog.open(deployment.settings, deployment.keyring)
    try:
        Vault(deployment.engine, deployment.keyring, audit=log.sink).write(
            "erp/api-key", erp_token.encode(), actor=Operator("admin:demo")
        )
    finally:
        log.close()
    signing_keys = SigningKeys(
        deployment.engine, deployment.keyring, deployment.settings.oauth_signing_alg
    )
    signing_keys.ensure()  # the ERP's webhook verifies Interlock's signatures with its JWKS
    erp = await _start_erp(deployment, erp_token, signing_keys)
    manifest = _point_at_sample(manifest, erp.port)
    lines = RequestLines() if run.nginx is None else demo_edge.EdgeLines()
    try:
        gateway, front = await _start_gateway(deployment, manifest, run, signing_keys, lines)
    except BaseException:
        await erp.stop()
        raise
    try:
        base = front.base if front is not None else f"https://127.0.0.1:{gateway.port}"
        # The gateway's own key service: a revocation through it takes effect at
        # once (another process would see it within the key cache's second).
        keys = gateway.gateway.keys
        issued = keys.create(DEMO_CLIENT, ["orders.read"])
        ca_subject = ca.certificate.subject.rfc4514_string()
        _header(deployment, ca_subject, erp.port, gateway.port, front)
        for table in (system_table(manifest), integration_table(manifest), route_table(manifest)):
            console.print(table)
        _show_register(register, data_dir)
        context = ssl.create_default_context(cafile=str(gateway.ca_file))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
            current = await _walkthrough(http, base, keys, issued.token, issued.info.id)
            await _oauth_walkthrough(http, deployment, gateway, base)
            await privacy_walkthrough(http, base, gateway, current, data_dir)
        _show_checklist(source)
        key_file = data_dir / "demo-key"  # the key that still works, for the curl examples
        write_private_file(key_file, current.encode())
        serving = not run.once
        stop.serving = lines.live = serving
        metrics = gateway.metrics_listener
        try_it(base, gateway.ca_file, key_file, metrics, serving=serving, deletes=run.deletes)
        if serving:
            await stop.event.wait()
    finally:
        await demo_edge.stop_front(front)
        await gateway.stop()
        await erp.stop()


def _show_checklist(source: Path) -> None:
    """The security checklist of the manifest as written, in short (configuration mode)."""
    console.print(summary_table(run_check(source)))
    console.print(
        f"  every item, its evidence and where to fix it: interlock check --manifest {source}",
        markup=False,
        soft_wrap=True,
    )


def _show_register(register: Register, data_dir: Path) -> None:
    """The Art. 30 register in short, and the full one as a printable page."""
    console.print(register_table(register))
    page = data_dir / "ropa.html"
    page.write_text(to_html(register), encoding="utf-8")
    console.print(
        f"  the full register, printable: {page} (removed with the demo's data; "
        "keep one with: interlock privacy ropa --format html -o ropa.html)",
        markup=False,
        soft_wrap=True,
    )


async def _start_erp(deployment: Deployment, token: str, keys: SigningKeys) -> SampleErp:
    ca = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id)
    issued = ca.issue_server(["localhost", "127.0.0.1"])
    work = Path(tempfile.mkdtemp(prefix="erp-", dir=deployment.settings.data_dir))
    cert, key = work / "erp.pem", work / "erp.key"
    cert.write_bytes(issued.certificate_pem)
    write_private_file(key, issued.private_key_pem)
    try:
        return await start_sample_erp(cert, key, token, jwks=keys.jwks)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _start_gateway(
    deployment: Deployment,
    manifest: Manifest,
    run: _Run,
    keys: SigningKeys,
    observer: RequestLines,
) -> tuple[RunningGateway, demo_edge.EdgeFront | None]:
    """The gateway; with ``--edge`` also the decision endpoint and nginx in front of it."""
    port = run.port if run.nginx is None else 0  # edge: --port is nginx's
    gateway = await _gateway(deployment, manifest, port, keys, observer)
    if run.nginx is None or not isinstance(observer, demo_edge.EdgeLines):
        return gateway, None
    try:
        front = await demo_edge.start_edge(deployment, manifest, gateway, run.nginx, observer)
    except BaseException:
        await gateway.stop()
        raise
    demo_edge.NOTE.set(observer)  # the walkthrough's calls say what carried them
    return gateway, front


async def _gateway(
    deployment: Deployment,
    manifest: Manifest,
    port: int,
    keys: SigningKeys,
    observer: RequestLines,
) -> RunningGateway:
    try:
        check_port_free("127.0.0.1", port)
    except ConfigError:
        port = 0  # the default port is taken: any free port will do for a demo
    # Data-subject requests' due work every half second: the walkthrough waits for it.
    privacy = PrivacyRuntime(privacy_factory(request_signer(keys)), every=0.5)
    return await start_gateway(
        deployment,
        manifest,
        ListenerConfig(port=port, metrics=_METRICS),
        privacy=privacy,
        observer=observer,
    )


def _point_at_sample(manifest: Manifest, erp_port: int) -> Manifest:
    """The example, with the ERP at the sample service and the demo client allowed keys."""
    sample = f"https://localhost:{erp_port}"
    declared = manifest.systems["erp"]
    privacy = declared.privacy
    if privacy is not None and privacy.webhook is not None:
        hook = privacy.webhook.model_copy(update={"url": f"{sample}/privacy/requests"})
        privacy = privacy.model_copy(update={"webhook": hook})
    erp = declared.model_copy(update={"url": sample, "ca": "pki:internal", "privacy": privacy})
    systems = {**manifest.systems, "erp": erp}
    clients = dict(manifest.clients)
    client = clients[DEMO_CLIENT]
    if "api_key" not in client.auth:
        clients[DEMO_CLIENT] = client.model_copy(update={"auth": (*client.auth, "api_key")})
    return manifest.model_copy(update={"systems": systems, "clients": clients})


def _header(
    deployment: Deployment,
    ca_subject: str,
    erp_port: int,
    gateway_port: int,
    front: demo_edge.EdgeFront | None,
) -> None:
    console.print(f"[bold]Interlock demo[/bold]: deployment {deployment.deployment_id}")
    console.print(f"  data directory  {deployment.settings.data_dir} (0700, keyring 0600)")
    console.print(f"  local CA        {ca_subject}")
    console.print(f"  sample ERP      https://localhost:{erp_port} (certificate from the local CA)")
    behind = " (behind nginx: routes that need the body, its own endpoints)" if front else ""
    console.print(f"  gateway         https://127.0.0.1:{gateway_port}{behind}")
    console.print(
        f"  API key         client {DEMO_CLIENT}, scope orders.read only (key shown once, "
        "kept in memory)" + ("" if front is not None else "\n")
    )
    if front is not None:
        demo_edge.show_front(front)


async def _walkthrough(
    http: aiohttp.ClientSession, base: str, keys: ApiKeys, token: str, key_id: str
) -> str:
    """Run the calls; returns the key that is still valid afterwards (the successor)."""
    bearer = {"Authorization": f"Bearer {token}"}
    steps: list[tuple[str, str, str, dict[str, str]]] = [
        ("allowed read", "GET", "/orders/1001", bearer),
        ("refused write (the key lacks the scope)", "POST", "/crm/accounts/ACME/orders", bearer),
        ("missing key", "GET", "/orders/1001", {}),
        ("unknown route", "GET", "/invoices/7", bearer),
        ("key in the URL", "GET", "/orders/1001?api_key=ilk_x", {}),
    ]
    for label, method, path, headers in steps:
        await _call(http, label, method=method, url=base + path, headers=headers)
    successor = await asyncio.to_thread(keys.rotate, key_id)
    console.print(f"[dim]-- rotated key {key_id} -> {successor.info.id} (24 h overlap)[/dim]")
    new_bearer = {"Authorization": f"Bearer {successor.token}"}
    await _call(
        http, "old key in its overlap", method="GET", url=f"{base}/orders/1002", headers=bearer
    )
    await _call(http, "new key", method="GET", url=f"{base}/orders/1003", headers=new_bearer)
    await asyncio.to_thread(keys.revoke, key_id)
    console.print(f"[dim]-- revoked key {key_id}[/dim]")
    await _call(http, "revoked key", method="GET", url=f"{base}/orders/1002", headers=bearer)
    return successor.token


async def _oauth_walkthrough(
    http: aiohttp.ClientSession, deployment: Deployment, gateway: RunningGateway, base: str
) -> None:
    """OAuth with the SDK: a DPoP-bound token, obtained and used; the stolen token refused."""
    client_secrets = ClientSecrets(deployment.engine, deployment.keyring, gateway.gateway.manifest)
    _, secret = await asyncio.to_thread(client_secrets.create, DEMO_CLIENT)
    console.print(
        f"\n[dim]-- OAuth 2.0: client secret issued for {DEMO_CLIENT} (shown once, kept in "
        "memory); the SDK gets a DPoP-bound token (RFC 9449) and signs a proof per request[/dim]"
    )
    credentials = ClientCredentials(
        f"{base}/oauth2/token",
        DEMO_CLIENT,
        client_secret=secret,
        scope="orders.read",
        verify=gateway.ca_file,
        dpop=True,
    )
    async with outbound_async_client(
        trust=tls.client_context(gateway.ca_file),
        timeouts=Timeouts.every(5.0),
        auth=InterlockAuth(credentials),
    ) as client:
        response = await client.get(f"{base}/orders/1001")
    console.print("[bold]SDK: client credentials + DPoP[/bold]")
    console.print("  GET /orders/1001  (Authorization: DPoP eyJ…, DPoP: <proof>)", markup=False)
    colour = "green" if response.status_code < 400 else "yellow"
    console.print(f"  [{colour}]{response.status_code}[/{colour}] {response.text[:110]}")
    _note(response.headers.get("X-Request-Id"))
    token = await credentials.atoken()
    stolen = {"Authorization": f"Bearer {token.value}"}
    await _call(
        http,
        "the same token, stolen and sent without the key",
        method="GET",
        url=f"{base}/orders/1001",
        headers=stolen,
    )


async def _call(
    http: aiohttp.ClientSession,
    label: str,
    *,
    method: str,
    url: str,
    headers: dict[str, str],
) -> None:
    given = headers.get("Authorization", "")
    shown = f"{given[:10]}…" if given else "no credential"
    path = url.split("/", 3)[3]
    body = {"order": "1001"} if method == "POST" else None
    async with http.request(method, url, headers=headers, json=body) as response:
        text = await response.text()
    try:
        payload = json.loads(text)
        summary = payload.get("detail") or json.dumps(payload)[:110]
    except (ValueError, AttributeError):
        summary = text[:110]
    colour = "green" if response.status < 400 else "yellow"
    console.print(f"[bold]{label}[/bold]")
    console.print(f"  {method} /{path}  ({shown})", markup=False)
    console.print(f"  [{colour}]{response.status}[/{colour}] {summary}", highlight=False)
    _note(response.headers.get("X-Request-Id"))


def _note(correlation_id: str | None) -> None:
    """In edge mode, what carried the call: nginx after a decision, or Interlock's pipeline."""
    edge = demo_edge.NOTE.get()
    if edge is not None:
        console.print(edge.note(correlation_id), soft_wrap=True, highlight=False)
