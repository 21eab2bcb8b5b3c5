"""Header allow-lists both ways: nothing the caller or the upstream adds crosses unless listed."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from interlock.config.manifest import Route, SubjectLocator
from interlock.gateway.header_policy import DEFAULT_FORWARDED, HeaderPolicy
from interlock.testing.gateway import Env

# Headers that change what the upstream does or whom it believes is asking (issue 18 item 2).
PROBES = {
    "X-HTTP-Method-Override": "DELETE",
    "X-HTTP-Method": "DELETE",
    "X-Method-Override": "DELETE",
    "X-Original-URL": "/admin/users",
    "X-Rewrite-URL": "/admin/users",
    "X-Forwarded-For": "10.0.0.1",
    "X-Forwarded-Host": "admin.internal",
    "X-Forwarded-Proto": "http",
    "X-Forwarded-Prefix": "/admin",
    "X-Real-IP": "10.0.0.1",
    "X-Client-IP": "10.0.0.1",
    "True-Client-IP": "10.0.0.1",
    "X-User": "admin",
    "X-Remote-User": "admin",
}
# The same names as WSGI/CGI upstreams read them: HTTP_X_FORWARDED_FOR is X-Forwarded-For.
UNDERSCORED = {name.replace("-", "_"): value for name, value in PROBES.items()}


def _seen(env: Env, path: str, headers: dict[str, str]) -> dict[str, str]:
    token, _ = env.key(["orders.read"])
    status, _, body = env.request("GET", path, {"X-API-Key": token, **headers})
    assert status == 200, body
    return {name.lower(): value for name, value in body["headers"].items()}


def test_no_probe_header_reaches_the_upstream_in_any_spelling(env: Env) -> None:
    """Method overrides, URL rewrites and identity headers, hyphenated or with '_': none arrive."""
    seen = _seen(env, "/echo/probe", {**PROBES, **UNDERSCORED})
    for name in (*PROBES, *UNDERSCORED):
        assert name.lower() not in seen, name
    assert "10.0.0.1" not in str(seen)
    assert "admin" not in str(seen)
    # What the upstream learns about the caller, Interlock states itself.
    assert seen["forwarded"].startswith('for="127.0.0.1";proto=https')


def test_allowed_headers_arrive_and_unlisted_ones_do_not(env: Env) -> None:
    """Content negotiation, trace context and conditionals pass; anything else stays behind."""
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    seen = _seen(
        env,
        "/echo/allowed",
        {
            "Accept": "application/json",
            "Accept-Language": "de",
            "traceparent": traceparent,
            "If-None-Match": '"v1"',
            "X-Tenant": "acme",
            "X-Custom": "dropped",
        },
    )
    assert seen["accept"] == "application/json"
    assert seen["accept-language"] == "de"
    assert seen["traceparent"] == traceparent
    assert seen["if-none-match"] == '"v1"'
    assert "x-tenant" not in seen
    assert "x-custom" not in seen


def test_a_route_adds_headers_to_forward_but_never_underscored_spellings(env: Env) -> None:
    """forward_headers: [X-Tenant] lets X-Tenant through; X_Tenant still does not pass."""
    seen = _seen(env, "/headers/echo/extra", {"X-Tenant": "acme", "X_Tenant": "evil", **PROBES})
    assert seen["x-tenant"] == "acme"
    assert "x_tenant" not in seen
    for name in PROBES:
        assert name.lower() not in seen, name


def test_upstream_response_headers_pass_only_the_allow_list(env: Env) -> None:
    """Server, X-Powered-By, X-Debug-Token, Set-Cookie and '_' names stay with the upstream."""
    token, _ = env.key(["orders.read"])
    status, headers, body = env.request("GET", "/headers/leaky", {"X-API-Key": token})
    assert (status, body) == (200, {"items": 3})
    assert headers["etag"] == '"v1"'
    assert headers["cache-control"] == "private, max-age=60"
    assert headers["content-type"].startswith("application/json")
    for name in ("x-powered-by", "x-debug-token", "set-cookie", "x_backend_host", "x-total-count"):
        assert name not in headers, name
    assert "Apache" not in headers.get("server", "")
    assert "PHP" not in str(headers)
    assert "erp-node-7" not in str(headers)


def test_a_route_adds_headers_to_return(env: Env) -> None:
    """return_headers: [X-Total-Count] relays it; the rest is still dropped."""
    token, _ = env.key(["orders.read"])
    status, headers, _ = env.request("GET", "/headers/leaky-extra", {"X-API-Key": token})
    assert status == 200
    assert headers["x-total-count"] == "3"
    assert "x-powered-by" not in headers
    assert "set-cookie" not in headers


def _route(**fields: object) -> Route:
    return Route.model_validate(
        {"method": "GET", "path": "/x", "upstream": "erp", "scope": "x.read", **fields}
    )


def _proxy(pairs: list[tuple[str, str]]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_headers_named_by_connection_are_dropped_even_when_allowed() -> None:
    """RFC 9110 §7.6.1: Connection: Accept makes Accept hop-by-hop for this message."""
    policy = HeaderPolicy.for_route(_route(forward_headers=["X-Tenant"]), integration_subjects=())
    kept = policy.request_headers(
        _proxy([("Connection", "Accept, X-Tenant"), ("Accept", "a/b"), ("X-Tenant", "t")])
    )
    assert list(kept.items()) == []


def test_routes_that_minimise_responses_do_not_ask_for_compressed_bodies() -> None:
    """A compressed answer cannot be cut to response_fields: Accept-Encoding stays behind."""
    plain = HeaderPolicy.for_route(_route(), integration_subjects=())
    minimised = HeaderPolicy.for_route(_route(response_fields=["id"]), integration_subjects=())
    assert plain.forwarded == DEFAULT_FORWARDED
    assert "accept-encoding" not in minimised.forwarded


def _locator(where: str) -> SubjectLocator:
    return SubjectLocator.model_validate({"kind": "email", "in": where, "json": "/email"})


def test_routes_that_read_subjects_in_responses_do_not_ask_for_compressed_bodies() -> None:
    """A gzip answer hides the person from the subjects stage: the caller would escape the
    lineage by sending Accept-Encoding. The route's own locators and its integration's count.
    """
    own = HeaderPolicy.for_route(_route(subjects=[_locator("response")]), integration_subjects=())
    inherited = HeaderPolicy.for_route(_route(), integration_subjects=(_locator("response"),))
    requests_only = HeaderPolicy.for_route(
        _route(subjects=[_locator("request")]), integration_subjects=(_locator("request"),)
    )
    assert "accept-encoding" not in own.forwarded
    assert "accept-encoding" not in inherited.forwarded
    assert requests_only.forwarded == DEFAULT_FORWARDED


@pytest.mark.parametrize("name", ["X-Tenant", "x-tenant", "X-TENANT"])
def test_route_additions_match_any_case(name: str) -> None:
    """Header names are case-insensitive (RFC 9110 §5.1)."""
    policy = HeaderPolicy.for_route(_route(forward_headers=[name]), integration_subjects=())
    assert policy.request_headers(_proxy([("x-Tenant", "t")])) == CIMultiDict([("x-Tenant", "t")])


def _connection_errors(env: Env) -> float:
    prefix = 'interlock_upstream_errors_total{kind="connection",system="erp"}'
    for line in env.metrics().splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Accept-Language", "d\xe9"),  # latin-1 obs-text (RFC 9110 §5.5)
        ("Accept-Language", "dé".encode().decode("latin-1")),  # UTF-8 bytes
        ("If-None-Match", '"\xff"'),
    ],
)
def test_a_forwarded_header_with_a_non_ascii_byte_is_refused_with_400(
    env: Env, name: str, value: str
) -> None:
    """Refused at the gateway, never an upstream failure (was 502, counted against the upstream)."""
    token, _ = env.key(["orders.read"])
    before = _connection_errors(env)
    status, headers, problem = env.request("GET", "/echo/bytes", {"X-API-Key": token, name: value})
    assert status == 400, problem
    assert headers["content-type"] == "application/problem+json"
    assert problem["type"] == "urn:interlock:problem:malformed-header"
    assert name in problem["detail"]
    assert _connection_errors(env) == before


def test_a_non_ascii_byte_in_a_header_that_is_not_forwarded_changes_nothing(env: Env) -> None:
    """Only what crosses is checked: a header the allow-list drops may hold anything."""
    assert "X-Comment" not in DEFAULT_FORWARDED
    assert _seen(env, "/echo/bytes", {"X-Comment": "d\xe9"})["x-request-id"]
