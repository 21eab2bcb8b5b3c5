"""Prometheus metrics of the gateway, in a registry of their own."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["GatewayMetrics"]


@dataclass
class GatewayMetrics:
    """Requests by route, outcome and status; latency; upstream errors."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        self.requests = Counter(
            "interlock_requests",
            "Requests handled, by route, outcome and status.",
            ["route", "outcome", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "interlock_request_duration_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.certificate_expiry = Gauge(
            "interlock_certificate_expiry_days",
            "Days until a certificate the gateway uses or trusts expires.",
            ["certificate"],
            registry=self.registry,
        )
        self.rate_limit_backend_failures = Counter(
            "interlock_rate_limit_backend_failures",
            "Rate-limit decisions the shared backend (Redis) failed, by failure policy.",
            ["policy"],
            registry=self.registry,
        )
        self.rate_limit_backend_up = Gauge(
            "interlock_rate_limit_backend_up",
            "1 while the shared rate-limit backend answers, 0 after it failed.",
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "interlock_upstream_errors",
            "Failed upstream calls, by system and kind.",
            ["system", "kind"],
            registry=self.registry,
        )

    def observe(self, route: str, outcome: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        # Label look-ups cost more than the increments; children are cached (the
        # label sets are bounded: routes x outcomes x statuses).
        key = (route, outcome, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(route, outcome, str(status))
        histogram = self._histograms.get(route)
        if histogram is None:
            histogram = self._histograms[route] = self.latency.labels(route)
        counter.inc()
        histogram.observe(seconds)

    def backend_failed(self, mode: str) -> None:
        """A rate-limit decision failed at the shared backend (``mode``: closed or open)."""
        self.rate_limit_backend_failures.labels(mode).inc()

    def backend_up(self, up: bool) -> None:
        """The shared rate-limit backend went down or came back."""
        self.rate_limit_backend_up.set(1 if up else 0)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
