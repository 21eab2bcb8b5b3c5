"""The metrics listener: ``GET /metrics`` on an address of its own, never the gateway's.

The gateway's listener faces every client; the metrics name routes, systems
and certificates and tell anyone how busy and how refused the gateway is. So
they are served apart (``INTERLOCK_METRICS_LISTEN``, default
``127.0.0.1:9464``): on a loopback address as plain HTTP, the Prometheus
convention for a scraper on the same host; on any other address over TLS with
the gateway listener's own context (its certificate, and client certificates
if the listener asks for them). It answers ``/metrics`` and nothing else (404).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from interlock.config.remote_tls import is_loopback
from interlock.errors import ConfigError, Refusal
from interlock.gateway.listener import ProblemServer
from interlock.gateway.metrics import GatewayMetrics
from interlock.gateway.problems import problem_response
from interlock.logs import get_logger

__all__ = ["MetricsListener", "metrics_tls", "start_metrics_listener"]

_log = get_logger("interlock.gateway")
PATH: Final = "/metrics"
_METHODS: Final = frozenset({"GET", "HEAD"})


def metrics_tls(host: str, listener: ssl.SSLContext) -> ssl.SSLContext | None:
    """The metrics listener's TLS on ``host``: none on loopback, else the gateway listener's."""
    return None if is_loopback(host) else listener


@dataclass(frozen=True)
class _Scrape:
    metrics: GatewayMetrics

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path != PATH:
            refusal = Refusal("not-found", "this listener serves /metrics only")
            return problem_response(refusal, os.urandom(16).hex(), request.path)
        if request.method not in _METHODS:
            refused = Refusal("method-not-allowed", "use GET", headers={"Allow": "GET, HEAD"})
            return problem_response(refused, os.urandom(16).hex(), request.path)
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


@dataclass(frozen=True)
class MetricsListener:
    """A started metrics listener; :meth:`stop` closes it."""

    runner: web.ServerRunner
    url: str  # where a scraper finds the metrics

    async def stop(self) -> None:
        """Stop serving metrics."""
        await self.runner.cleanup()


async def start_metrics_listener(
    metrics: GatewayMetrics, host: str, port: int, tls: ssl.SSLContext | None
) -> MetricsListener:
    """Serve ``metrics`` on ``host``:``port`` (0: any free port), over ``tls`` if given.

    :func:`metrics_tls` decides ``tls``. A port in use is a :class:`ConfigError`.
    """
    server = ProblemServer(_Scrape(metrics).handle, access_log=None)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"cannot listen for metrics on {host}:{port} ({exc.strerror or 'address unusable'}); "
            "set INTERLOCK_METRICS_LISTEN to another HOST:PORT, or to off"
        ) from None
    bound = next(
        (int(a[1]) for a in runner.addresses if isinstance(a, tuple) and len(a) >= 2), port
    )
    shown = f"[{host}]" if ":" in host else host
    url = f"{'http' if tls is None else 'https'}://{shown}:{bound}{PATH}"
    _log.info("metrics listening", url=url)
    return MetricsListener(runner, url)
