"""``interlock serve``: run the gateway until SIGINT/SIGTERM (SIGHUP reloads)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, cast

import typer

from interlock.cli.context import settings
from interlock.cli.options import DEFAULT_LISTEN, ManifestOption
from interlock.cli.preflight import before_serve, require
from interlock.cli.privacy_wiring import privacy_factory, request_signer
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.errors import ConfigError
from interlock.gateway.blocking_pool import BoundedExecutor
from interlock.gateway.manifest_follower import (
    ManifestFollower,
    load_stored_manifest,
    stored_manifest,
)
from interlock.gateway.privacy_runtime import PrivacyRuntime
from interlock.gateway.server import ListenerConfig, run_event_loop, serve_forever, start_gateway
from interlock.gateway.tls import ClientAuth
from interlock.limits.scope import check_scope
from interlock.oauth.signing_keys import SigningKeys
from interlock.sdk.rfc9421 import SignedRequests
from interlock.store import Deployment, open_deployment
from interlock.store.manifest_versions import ManifestVersion
from interlock.validation.artifacts import route_artifacts

__all__ = ["DEFAULT_LISTEN", "serve", "split_listen"]


def serve(  # noqa: PLR0917  (typer maps each parameter to an option)
    manifest: ManifestOption = None,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT of the HTTPS listener.")
    ] = DEFAULT_LISTEN,
    cert: Annotated[
        str, typer.Option("--cert", help="'auto' (issued by the local CA) or a PEM certificate.")
    ] = "auto",
    key: Annotated[Path | None, typer.Option("--key", help="PEM private key for --cert.")] = None,
    reuse_port: Annotated[
        bool,
        typer.Option("--reuse-port", help="Share the port with other gateway processes (workers)."),
    ] = False,
    client_auth: Annotated[
        str,
        typer.Option(
            "--client-auth",
            help="Client certificates (mutual TLS): none, optional or required.",
        ),
    ] = "none",
    client_ca: Annotated[
        Path | None,
        typer.Option(
            "--client-ca",
            help="CA for client certificates (default: the deployment's own, with its CRL).",
        ),
    ] = None,
) -> None:
    """Serve the manifest's routes over HTTPS."""
    current = settings()
    manifest_path = manifest or current.manifest
    store_mode = current.manifest_source == "store"
    # Store mode: the current published version, loaded below once the store is open.
    loaded = None if store_mode else load_manifest(manifest_path, route_artifacts)
    host, port = split_listen(listen)
    if (cert == "auto") != (key is None):
        raise ConfigError("--cert PATH needs --key PATH (and --cert auto takes no --key)")
    if client_auth not in {"none", "optional", "required"}:
        raise ConfigError(f"--client-auth must be none, optional or required, got {client_auth!r}")
    # Several processes without Redis: refused (here, before anything is issued or bound),
    # or budgets divided where the limits are built (limits.scope).
    check_scope(current, reuse_port=reuse_port)
    listener = ListenerConfig(
        client_auth=cast(ClientAuth, client_auth),
        client_ca=client_ca,
        host=host,
        port=port,
        certificate=None if cert == "auto" else Path(cert),
        private_key=key,
        reuse_port=reuse_port,
        metrics=current.metrics_address,
    )
    # Keyring permissions, migrations and the keyring/store binding: opening refuses.
    deployment = open_deployment(current)
    try:
        # The manifest's secrets and the ports, before anything is issued or bound.
        require(before_serve(current, deployment.engine, loaded, host, port, reuse_port=reuse_port))
        stored = None
        if loaded is None:
            stored = stored_manifest(deployment.engine)
            work = current.data_dir / "manifests"
            loaded = load_stored_manifest(stored, work, manifest_path.parent)
        run_event_loop(_run(deployment, loaded, listener, manifest_path, stored))
    finally:
        deployment.close()


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) of ``--listen`` as (host without brackets, port)."""
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port_text)


async def _run(
    deployment: Deployment,
    manifest: Manifest,
    listener: ListenerConfig,
    manifest_path: Path,
    stored: ManifestVersion | None,
) -> None:
    # Blocking calls on a bounded pool; a request over capacity gets 503 (blocking_pool).
    settings = deployment.settings
    asyncio.get_running_loop().set_default_executor(
        BoundedExecutor(settings.blocking_threads, settings.blocking_queue)
    )
    # /v1/privacy and the due work of data-subject requests (docs/privacy.md).
    keys = SigningKeys(deployment.engine, deployment.keyring, deployment.settings.oauth_signing_alg)
    signer = request_signer(keys)
    privacy = PrivacyRuntime(privacy_factory(signer))
    running = await start_gateway(
        deployment,
        manifest,
        listener,
        manifest_path,
        privacy=privacy,
        # Rejection reports to AS2 partners' webhooks, signed as the privacy webhooks are.
        notify_auth=lambda: SignedRequests(signer()),
        stored=None if stored is None else (stored.version, stored.sha256),
    )
    if stored is not None:  # follow the store's current version (docs/scale.md)
        follower = ManifestFollower(running, deployment.settings, stored.marker)
        running.follow(follower.reload, follower.run())
        typer.echo(f"Manifest version {stored.version} (sha256 {stored.sha256}) from the store")
    typer.echo(
        f"Interlock gateway on https://{listener.host}:{running.port} (CA: {running.ca_file})"
    )
    if running.metrics_listener is not None:
        typer.echo(f"Metrics on {running.metrics_listener.url}")
    await serve_forever(running)
