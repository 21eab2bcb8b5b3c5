"""forward_headers and return_headers: what a route may add, refused at the offending entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.config.header_names import header_name_refusal
from tests.config.manifests import VALID, assert_error_after_edit, check, messages

_ROUTE = "scope: orders.read}"
_AT = "integrations.order-sync.routes[0]"


def test_a_route_may_add_headers_each_way(tmp_path: Path) -> None:
    """Plain names are accepted as written."""
    text = VALID.replace(
        _ROUTE, "scope: orders.read, forward_headers: [X-Tenant], return_headers: [X-Total-Count]}"
    )
    report = check(tmp_path, text)
    assert report.manifest is not None, messages(report)
    route = report.manifest.integrations["order-sync"].routes[0]
    assert (route.forward_headers, route.return_headers) == (("X-Tenant",), ("X-Total-Count",))


@pytest.mark.parametrize(
    ("field", "names", "index", "fragment"),
    [
        ("forward_headers", "[X-Tenant, X_Forwarded_For]", 1, "contains '_'"),
        ("forward_headers", "[X_Tenant]", 0, "WSGI and CGI"),
        ("return_headers", "[X_Backend]", 0, "contains '_'"),
        ("forward_headers", "[Authorization]", 0, "credentials"),
        ("forward_headers", "[X-Api-Key]", 0, "credentials"),
        ("forward_headers", "[Cookie]", 0, "credentials"),
        ("return_headers", "[Set-Cookie]", 0, "credentials"),
        ("forward_headers", "[Connection]", 0, "hop-by-hop"),
        ("forward_headers", "[Transfer-Encoding]", 0, "hop-by-hop"),
        ("return_headers", "[Keep-Alive]", 0, "hop-by-hop"),
        ("forward_headers", "[Host]", 0, "set by Interlock"),
        ("forward_headers", "[Forwarded]", 0, "set by Interlock"),
        ("forward_headers", "[Content-Length]", 0, "set by Interlock"),
        ("forward_headers", "[X-Forwarded-For]", 0, "client address or identity"),
        ("forward_headers", "[X-Forwarded-Whatever]", 0, "client address or identity"),
        ("forward_headers", "[X-Real-IP]", 0, "client address or identity"),
        ("forward_headers", "[X-Remote-User]", 0, "client address or identity"),
        ("forward_headers", "[Idempotency-Key]", 0, "derived per client"),
        ("forward_headers", "[X-HTTP-Method-Override]", 0, "method or URL"),
        ("forward_headers", "[X-Original-URL]", 0, "method or URL"),
        ("return_headers", "[Server]", 0, "CWE-200"),
        ("return_headers", "[X-Powered-By]", 0, "CWE-200"),
        ("forward_headers", '["X Tenant"]', 0, "not a header name"),
    ],
)
def test_a_forbidden_header_name_is_a_located_error(
    tmp_path: Path, field: str, names: str, index: int, fragment: str
) -> None:
    """Each refused name is reported at its own list entry, saying why."""
    assert_error_after_edit(
        tmp_path,
        _ROUTE,
        f"scope: orders.read, {field}: {names}}}",
        f"{_AT}.{field}[{index}]",
        fragment,
    )


def test_a_header_listed_twice_in_any_case_is_an_error(tmp_path: Path) -> None:
    """Header names are case-insensitive: X-Tenant and x-tenant are one name."""
    assert_error_after_edit(
        tmp_path,
        _ROUTE,
        "scope: orders.read, forward_headers: [X-Tenant, x-tenant]}",
        f"{_AT}.forward_headers",
        "duplicate header",
    )


@pytest.mark.parametrize("name", ["Server", "X-Forwarded-For", "X-HTTP-Method-Override"])
def test_direction_matters_only_where_the_threat_is_directional(name: str) -> None:
    """Identity and rewrite headers are refused upstream-bound; disclosure ones caller-bound."""
    assert (header_name_refusal(name, "forward") is None) != (
        header_name_refusal(name, "return") is None
    )
