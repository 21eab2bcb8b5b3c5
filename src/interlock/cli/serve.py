"""``interlock serve``: run the gateway until SIGINT/SIGTERM (SIGHUP reloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interlock.cli.context import settings
from interlock.cli.options import ManifestOption
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.errors import ConfigError
from interlock.gateway.server import ListenerConfig, run_event_loop, serve_forever, start_gateway
from interlock.store import Deployment, open_deployment

__all__ = ["serve"]


def serve(
    manifest: ManifestOption = None,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT of the HTTPS listener.")
    ] = "127.0.0.1:8443",
    cert: Annotated[
        str, typer.Option("--cert", help="'auto' (issued by the local CA) or a PEM certificate.")
    ] = "auto",
    key: Annotated[Path | None, typer.Option("--key", help="PEM private key for --cert.")] = None,
    reuse_port: Annotated[
        bool,
        typer.Option("--reuse-port", help="Share the port with other gateway processes (workers)."),
    ] = False,
) -> None:
    """Serve the manifest's routes over HTTPS."""
    current = settings()
    manifest_path = manifest or current.manifest
    loaded = load_manifest(manifest_path)
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise ConfigError(f"--listen must be HOST:PORT, got {listen!r}")
    if (cert == "auto") != (key is None):
        raise ConfigError("--cert PATH needs --key PATH (and --cert auto takes no --key)")
    listener = ListenerConfig(
        host=host.strip("[]"),
        port=int(port_text),
        certificate=None if cert == "auto" else Path(cert),
        private_key=key,
        reuse_port=reuse_port,
    )
    deployment = open_deployment(current)
    try:
        run_event_loop(_run(deployment, loaded, listener, manifest_path))
    finally:
        deployment.close()


async def _run(
    deployment: Deployment, manifest: Manifest, listener: ListenerConfig, manifest_path: Path
) -> None:
    running = await start_gateway(deployment, manifest, listener, manifest_path)
    typer.echo(
        f"Interlock gateway on https://{listener.host}:{running.port} (CA: {running.ca_file})"
    )
    await serve_forever(running)
