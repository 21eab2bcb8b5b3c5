"""nginx forwards a request only to the route the decision decided, and decides it once.

The generated configuration dispatches each method to the route the router
itself picks (GET routes answer HEAD, the first route that fits wins, a
concrete template before a parameter), and the decision refuses (503
``route-unavailable``) a route location that is not the route it matched:
the system's credential never goes to another system, whatever nginx's
configuration and the decision's manifest disagree on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.edge.conftest import Edge, Recorder, Stack, edge_stack, recording_upstream
from tests.gateway.edge.conftest import with_other_system as _with_other

pytestmark = pytest.mark.processes

PROBLEM = "urn:interlock:problem:"
# GET listed before HEAD on one template, on different systems and integrations.
DUAL = """\
  dual-get:
    source: erp
    target: erp
    client: order-sync
    callers: [oauth-only, cert-sync, every-way]
    purpose: Test HEAD dispatch
    legal_basis: contract
    retention: 30d
    routes:
      - {method: GET, path: "/dual/{id}", upstream: erp, upstream_path: "/echo/{id}", scope: orders.read}
  dual-head:
    source: erp
    target: other
    client: crm-sync
    purpose: Test HEAD dispatch
    legal_basis: contract
    retention: 30d
    routes:
      - {method: HEAD, path: "/dual/{id}", upstream: other, upstream_path: "/head-only/{id}", scope: orders.read}
  limits:
    source: erp
    target: erp
    client: order-sync
    callers: [oauth-only, cert-sync, every-way]
    purpose: Test the fall-through of a concrete template
    legal_basis: contract
    retention: 30d
    routes:
      - {method: GET, path: "/lim2/{id}", upstream: erp, upstream_path: "/echo/{id}", scope: orders.read, rate_limit: {per_client: 3/hour, per_ip: 1000/hour}}
      - {method: POST, path: "/lim2/export", upstream: erp, upstream_path: "/echo/export", scope: orders.write}
"""
MOVING = """\
  moving:
    source: erp
    target: other
    client: order-sync
    callers: [oauth-only, cert-sync, every-way]
    purpose: Test a route moved between systems
    legal_basis: contract
    retention: 30d
    routes:
      - {method: GET, path: "/mv/{id}", upstream: erp, upstream_path: "/echo/{id}", scope: orders.read}
      - {method: GET, path: "/gone/{id}", upstream: erp, upstream_path: "/echo/{id}", scope: orders.read}
"""


@pytest.fixture(scope="module")
def other(edge: Edge) -> Iterator[Recorder]:
    """The second system, recording what reaches it."""
    with recording_upstream(edge, "other") as recorder:
        yield recorder


@pytest.fixture(scope="module")
def dual(edge: Edge, other: Recorder) -> Iterator[Stack]:
    """nginx and the decision on the harness manifest plus :data:`DUAL`."""
    text = _with_other(edge.env.manifest_path.read_text(), other, DUAL)
    with edge_stack(edge, "dual", text) as stack:
        yield stack


def _no_erp_credential(edge: Edge, other: Recorder) -> None:
    for seen in other.seen:
        assert edge.env.erp_token not in seen.headers.get("authorization", ""), seen


def test_head_reaches_the_system_the_embedded_gateway_reaches(
    edge: Edge, other: Recorder, dual: Stack
) -> None:
    """HEAD on a template whose GET route is listed first: the GET route's system, both ways.

    The router picks the GET route for HEAD (first match wins); nginx sent
    HEAD to the HEAD route's location, forwarding erp's credential to the
    other system for a client that does not own it.
    """
    token, _ = edge.env.key(["orders.read"])
    other.seen.clear()
    edge_status = dual.request("HEAD", "/dual/1", {"X-API-Key": token})[0]
    embedded_status = dual.request("HEAD", "/dual/1", {"X-API-Key": token}, edge=False)[0]
    assert edge_status == embedded_status == 200
    assert other.seen == []  # erp answered, as embedded
    _no_erp_credential(edge, other)
    crm = edge.env.keys.create("crm-sync", ["orders.read"]).token
    edge.env.issued_tokens.append(crm)
    edge_status = dual.request("HEAD", "/dual/1", {"X-API-Key": crm})[0]
    embedded_status = dual.request("HEAD", "/dual/1", {"X-API-Key": crm}, edge=False)[0]
    assert edge_status == embedded_status == 403
    assert other.seen == []


def test_a_fallback_to_another_template_is_decided_once(edge: Edge, dual: Stack) -> None:
    """GET /lim2/export (an exact template with POST only) is GET /lim2/{id}: 3 an hour, as embedded.

    One decision per request: one rate-limit token and one audit entry each.
    """
    token, _ = edge.env.key(["orders.read"])
    answers = [dual.request("GET", "/lim2/export", {"X-API-Key": token}) for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    assert answers[0][2]["path"] == "/echo/export"
    correlation_id = answers[0][1]["x-request-id"]
    assert len(edge.env.audit_entries(correlation_id, "gateway.request")) == 1


def test_a_route_moved_or_removed_is_refused_until_the_decision_reloads(
    edge: Edge, other: Recorder
) -> None:
    """nginx regenerated (/mv/{id} on ``other``, /gone/{id} removed), the decision not: 503.

    The request reaches the system the decision chose or is refused; the other
    system never sees erp's credential, and a removed route is not forwarded.
    """
    old = _with_other(edge.env.manifest_path.read_text(), other, MOVING)
    new = old.replace('"/mv/{id}", upstream: erp', '"/mv/{id}", upstream: other')
    new = "".join(line for line in new.splitlines(keepends=True) if "/gone/" not in line)
    token, _ = edge.env.key(["orders.read"])
    with edge_stack(edge, "moved", old, generated=new) as stack:
        other.seen.clear()
        answers = [
            stack.request("GET", path, {"X-API-Key": token}) for path in ("/mv/7", "/gone/7")
        ]
    for status, headers, body in answers:
        assert status == 503, body
        assert headers["content-type"] == "application/problem+json"
        assert body["type"] == PROBLEM + "route-unavailable"
    assert other.seen == []
