"""The route table: exact segment matching, 405 with Allow, re-encoded upstream paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.config.loader import load_manifest
from interlock.gateway.routing import MethodNotAllowedError, RouteTable, UnknownRouteError

MANIFEST = """\
version: 1
systems:
  erp: {url: "https://erp.internal/base", location: DE}
roles:
  r: {scopes: [orders.read, orders.write]}
clients:
  c: {auth: [api_key], roles: [r]}
integrations:
  f:
    source: erp
    target: erp
    client: c
    purpose: test
    legal_basis: contract
    retention: 1d
    routes:
      - {method: GET, path: "/orders/{id}", upstream: erp, upstream_path: "/v2/order/{id}/detail", scope: orders.read}
      - {method: PUT, path: "/orders/{id}", upstream: erp, scope: orders.write}
      - {method: GET, path: "/orders/export", upstream: erp, scope: orders.read}
      - {method: GET, path: "/", upstream: erp, scope: orders.read}
"""


@pytest.fixture
def table(tmp_path: Path) -> RouteTable:
    """The compiled table of the test manifest."""
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    return RouteTable.compile(load_manifest(path))


def test_parameters_bind_one_segment_each(table: RouteTable) -> None:
    """`/orders/{id}` matches exactly two segments and binds the second."""
    match = table.match("GET", ("orders", "42"))
    assert match.values == {"id": "42"}
    assert match.route.upstream_path(match.values) == "/v2/order/42/detail"
    with pytest.raises(UnknownRouteError):
        table.match("GET", ("orders", "42", "extra"))


def test_concrete_segments_win_over_parameters(table: RouteTable) -> None:
    """/orders/export is not swallowed by /orders/{id}, though declared after it (OpenAPI)."""
    assert table.match("GET", ("orders", "export")).route.route.path == "/orders/export"
    assert table.match("GET", ("orders", "exports")).route.route.path == "/orders/{id}"


def test_parameter_values_are_percent_encoded_upstream(table: RouteTable) -> None:
    """A decoded value with '/', '?', '#' or spaces stays one upstream segment."""
    match = table.match("GET", ("orders", "a/b?c#d e"))
    assert match.route.upstream_path(match.values) == "/v2/order/a%2Fb%3Fc%23d%20e/detail"


def test_wrong_method_lists_what_is_allowed(table: RouteTable) -> None:
    """405 carries every method the path accepts; GET implies HEAD."""
    with pytest.raises(MethodNotAllowedError) as caught:
        table.match("DELETE", ("orders", "1"))
    assert caught.value.allowed == ("GET", "HEAD", "PUT")


def test_head_is_served_by_the_get_route_and_root_path_matches(table: RouteTable) -> None:
    """HEAD follows GET; the root template matches the empty segment list."""
    assert table.match("HEAD", ("orders", "1")).route.route.method == "GET"
    assert table.match("GET", ()).route.route.path == "/"
