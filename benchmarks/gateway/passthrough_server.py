"""Interlock with every pipeline stage removed: the cost of proxying alone.

Benchmark-only. The product has no unauthenticated routes; this process
strips the stages from the compiled pipelines after start-up so the benchmark
can separate what authentication costs from what forwarding costs.

Usage: python passthrough_server.py MANIFEST PORT   (INTERLOCK_DATA_DIR as for serve)
"""

from __future__ import annotations

import sys
from pathlib import Path

from interlock.config.loader import load_manifest
from interlock.config.settings import load_settings
from interlock.gateway.pipeline import Pipeline
from interlock.gateway.server import ListenerConfig, run_event_loop, serve_forever, start_gateway
from interlock.logs import configure_logging
from interlock.store import open_deployment


async def _main(manifest_path: Path, port: int) -> None:
    settings = load_settings()
    configure_logging("warning", "json")
    deployment = open_deployment(settings)
    manifest = load_manifest(manifest_path)
    running = await start_gateway(deployment, manifest, ListenerConfig(port=port, reuse_port=True))
    pipelines = running.gateway.pipelines
    for route, pipeline in pipelines.items():
        pipelines[route] = Pipeline((), pipeline.terminal)
    await serve_forever(running)


if __name__ == "__main__":
    run_event_loop(_main(Path(sys.argv[1]), int(sys.argv[2])))
