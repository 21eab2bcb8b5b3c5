"""What a decision works out once per route gives what it used to work out per request."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.gateway.edge.decision import _EdgeRoute, _path_and_query
from interlock.gateway.edge.protocol import needs_body
from interlock.gateway.routing import CompiledRoute, RouteMatch, RouteTable
from interlock.gateway.upstream import upstream_url
from interlock.testing.gateway import MANIFEST

# Systems' URLs as the manifest may give them: bare, with a base path, with a trailing "/".
SYSTEM_URLS = (
    "https://localhost:9443",
    "https://localhost:9443/",
    "https://erp.internal/base",
    "https://erp.internal/base/v2/",
)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """The harness manifest (its routes cover edge and body-needing ones)."""
    path = tmp_path_factory.mktemp("manifest") / "interlock.yaml"
    path.write_text(MANIFEST.format(erp_port=9443, rogue_port=9444))
    return load_manifest(path)


def _with_url(route: CompiledRoute, url: str) -> CompiledRoute:
    return replace(route, system=route.system.model_copy(update={"url": url}))


def test_a_routes_plan_says_what_needs_body_and_the_upstream_country(manifest: Manifest) -> None:
    """Decided here exactly when no stage needs the body; the country is the upstream's.

    Not the target's: a route to the integration's source sends data there
    (privacy review, finding 5); the audit entry records this country.
    """
    for route in RouteTable.compile(manifest).routes:
        plan = _EdgeRoute.of(route)
        assert plan.decided_here is not needs_body(route), route.label
        assert plan.upstream_country == manifest.systems[route.system_name].location
    to_source = next(
        r for r in RouteTable.compile(manifest).routes if r.label == "GET /orders/{id}"
    )
    assert to_source.system_name == to_source.integration.source
    moved = replace(to_source, system=to_source.system.model_copy(update={"location": "CH"}))
    assert _EdgeRoute.of(moved).upstream_country == "CH"


@given(
    url=st.sampled_from(SYSTEM_URLS),
    value=st.text(max_size=12),
    query=st.text(alphabet=st.sampled_from("a=&%2F?#\t\r\n é;/"), max_size=12),
)
def test_the_upstream_uri_is_the_one_split_from_the_upstream_url(
    manifest: Manifest, url: str, value: str, query: str
) -> None:
    """Path and query as urlsplit makes them of the whole URL, whatever the value and query."""
    route = next(r for r in RouteTable.compile(manifest).routes if r.label == "GET /echo/{value}")
    route = _with_url(route, url)
    match = RouteMatch(route, {"value": value})
    plan = _EdgeRoute.of(route)
    assert plan.upstream_uri(match, query) == _path_and_query(upstream_url(match, query))


def test_a_system_url_string_operations_would_split_differently_takes_urlsplit(
    manifest: Manifest,
) -> None:
    """A '#' in the system's URL: no precomputed base path, the old way's answer."""
    route = next(r for r in RouteTable.compile(manifest).routes if r.label == "GET /echo/{value}")
    route = _with_url(route, "https://erp.internal/a#b")
    plan = _EdgeRoute.of(route)
    assert plan.base_path is None
    match = RouteMatch(route, {"value": "x"})
    assert plan.upstream_uri(match, "q=1") == _path_and_query(upstream_url(match, "q=1"))
