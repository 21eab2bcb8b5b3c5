"""Routes compiled once from the manifest, and matched against decoded segments.

Matching works on decoded segments (see :mod:`interlock.gateway.paths`); a
parameter matches exactly one segment, so a value can never span a ``/``.
The upstream path is rebuilt from the template with each value re-encoded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from interlock.config.manifest import Integration, Manifest, Route, System

__all__ = [
    "CompiledRoute",
    "MethodNotAllowedError",
    "RouteMatch",
    "RouteTable",
    "UnknownRouteError",
]


class UnknownRouteError(LookupError):
    """No route has this path."""


class MethodNotAllowedError(LookupError):
    """Routes have this path, but not with this method."""

    def __init__(self, allowed: Sequence[str]) -> None:
        super().__init__("method not allowed")
        self.allowed = tuple(sorted(allowed))


@dataclass(frozen=True, eq=False)  # identity hashing: routes key the pipeline map
class CompiledRoute:
    """A manifest route with everything the pipeline needs, resolved once."""

    integration_name: str
    integration: Integration
    route: Route
    system_name: str
    system: System
    pattern: tuple[str | None, ...]  # None marks a parameter
    params: tuple[str, ...]
    upstream_template: tuple[str | None, ...]
    upstream_params: tuple[str, ...]
    label: str  # low-cardinality name for logs and metrics: "GET /orders/{id}"

    def upstream_path(self, values: dict[str, str]) -> str:
        """The upstream path with parameter values percent-encoded (``/`` included)."""
        names = iter(self.upstream_params)
        parts = [
            quote(values[next(names)], safe="") if piece is None else piece
            for piece in self.upstream_template
        ]
        return "/" + "/".join(parts) if parts else "/"


@dataclass(frozen=True)
class RouteMatch:
    """A matched route and its parameter values."""

    route: CompiledRoute
    values: dict[str, str]


class RouteTable:
    """All routes of a manifest, grouped by segment count for quick matching."""

    def __init__(self, routes: Sequence[CompiledRoute]) -> None:
        """Use :meth:`compile`."""
        self.routes = tuple(routes)
        # Candidates by (segment count, first segment), and by segment count for
        # routes whose first segment is a parameter: a request is compared with
        # the few routes that can fit it, not with every route of its length
        # (1,000 routes of one shape cost 800 times one route when scanned).
        self._by_first: dict[tuple[int, str], list[CompiledRoute]] = {}
        self._by_length: dict[int, list[CompiledRoute]] = {}
        # Concrete segments win over parameters, left to right, as OpenAPI
        # specifies ("concrete paths are matched before their templated
        # counterparts"): /orders/export is never swallowed by /orders/{id}.
        # The sort puts every route with a concrete first segment before those
        # with a parameter there, so the first group, then the second, is the
        # same order as one sorted list restricted to the routes that can fit.
        for route in sorted(routes, key=lambda r: tuple(p is None for p in r.pattern)):
            first = route.pattern[0] if route.pattern else None
            if first is None:
                self._by_length.setdefault(len(route.pattern), []).append(route)
            else:
                self._by_first.setdefault((len(route.pattern), first), []).append(route)

    @classmethod
    def compile(cls, manifest: Manifest) -> RouteTable:
        """Compile every route of every integration."""
        return cls(list(_compile(manifest)))

    def match(self, method: str, segments: tuple[str, ...]) -> RouteMatch:
        """The matching route; raises UnknownRouteError or MethodNotAllowedError."""
        allowed: list[str] = []
        length = len(segments)
        concrete = self._by_first.get((length, segments[0]), ()) if segments else ()
        for candidate in itertools.chain(concrete, self._by_length.get(length, ())):
            if not _fits(candidate.pattern, segments):
                continue
            if candidate.route.method == method or (
                method == "HEAD" and candidate.route.method == "GET"
            ):
                pairs = zip(candidate.pattern, segments, strict=True)
                found = (segment for piece, segment in pairs if piece is None)
                values = dict(zip(candidate.params, found, strict=True))
                return RouteMatch(candidate, values)
            allowed.append(candidate.route.method)
        if allowed:
            if "GET" in allowed:
                allowed.append("HEAD")
            raise MethodNotAllowedError(sorted(set(allowed)))
        raise UnknownRouteError


def _fits(pattern: tuple[str | None, ...], segments: tuple[str, ...]) -> bool:
    return all(p is None or p == s for p, s in zip(pattern, segments, strict=True))


def _compile(manifest: Manifest) -> Iterator[CompiledRoute]:
    for name, flow in manifest.integrations.items():
        for route in flow.routes:
            pattern, params = _template(route.path)
            upstream, upstream_params = _template(route.upstream_path or route.path)
            yield CompiledRoute(
                integration_name=name,
                integration=flow,
                route=route,
                system_name=route.upstream,
                system=manifest.systems[route.upstream],
                pattern=pattern,
                params=params,
                upstream_template=upstream,
                upstream_params=upstream_params,
                label=route.label,
            )


def _template(path: str) -> tuple[tuple[str | None, ...], tuple[str, ...]]:
    if path in {"", "/"}:
        return (), ()
    pieces: list[str | None] = []
    params: list[str] = []
    for segment in path.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            pieces.append(None)
            params.append(segment[1:-1])
        else:
            pieces.append(segment)
    return tuple(pieces), tuple(params)
