"""How each proxy passes the client certificate it verified; what nginx's files may hold."""

from __future__ import annotations

import base64
import os
import ssl
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.errors import ConfigError
from interlock.gateway.edge.nginx import NginxOptions, render_nginx
from interlock.gateway.edge.protocol import (
    CONVENTIONS,
    ProxyKind,
    UnreadableCertificateError,
    proxy_certificate,
)
from interlock.testing.gateway import MANIFEST
from interlock.testing.tls import make_tls
from tests.gateway.edge.conftest import assert_nginx_accepts, nginx_or_skip


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A certificate made at run time, as PEM text."""
    return make_tls(tmp_path_factory.mktemp("tls")).cert_file.read_text()


def _headers(values: dict[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(values))


def _read(kind: ProxyKind, values: dict[str, str]) -> bytes | None:
    return proxy_certificate(CONVENTIONS[kind], _headers(values))


def test_each_proxys_certificate_header_gives_the_same_der(pem: str) -> None:
    """nginx (escaped PEM), Envoy (XFCC Cert=), Traefik and Caddy (base64 DER)."""
    der = ssl.PEM_cert_to_DER_cert(pem)
    b64 = base64.b64encode(der).decode()
    assert (
        _read(
            "nginx",
            {"X-Interlock-Client-Cert": quote(pem), "X-Interlock-Client-Verify": "SUCCESS"},
        )
        == der
    )
    xfcc = f'By=spiffe://a/b;Hash=00;Cert="{quote(pem)}";Subject=""'
    assert _read("envoy", {"X-Forwarded-Client-Cert": xfcc}) == der
    assert _read("traefik", {"X-Forwarded-Tls-Client-Cert": quote(b64)}) == der
    assert _read("caddy", {"X-Interlock-Client-Cert-Der": b64}) == der


def test_no_certificate_is_none_and_an_unverified_one_is_refused(pem: str) -> None:
    """Empty means none; nginx's FAILED or a value that does not decode raises."""
    assert (
        _read("nginx", {"X-Interlock-Client-Cert": "", "X-Interlock-Client-Verify": "NONE"}) is None
    )
    assert _read("envoy", {}) is None
    with pytest.raises(UnreadableCertificateError):
        _read(
            "nginx",
            {
                "X-Interlock-Client-Cert": quote(pem),
                "X-Interlock-Client-Verify": "FAILED:certificate revoked",
            },
        )
    with pytest.raises(UnreadableCertificateError):
        _read("caddy", {"X-Interlock-Client-Cert-Der": "not base64 !"})


def _manifest(tmp_path: Path, text: str = MANIFEST) -> Manifest:
    path = tmp_path / "interlock.yaml"
    path.write_text(text.format(erp_port=9443, rogue_port=9444))
    return load_manifest(path)


def _options(tmp_path: Path) -> NginxOptions:
    tls = make_tls(tmp_path / "tls", hosts=("localhost", "127.0.0.1"))
    for kind in ("client_body", "proxy"):
        (tmp_path / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    return NginxOptions(
        listen="127.0.0.1:18443",
        certificate=tls.cert_file,
        private_key=tls.key_file,
        decision_socket=tmp_path / "authz.sock",
        interlock="127.0.0.1:18444",
        interlock_ca=tls.ca_file,
        prefix=tmp_path,
        anchors={"pki:internal": tls.ca_file},
        client_ca=tls.ca_file,
        user="root" if os.geteuid() == 0 else None,
    )


def test_generated_configuration_names_no_secret_and_verifies_upstreams(tmp_path: Path) -> None:
    """Credentials come from the decision at run time; every upstream is TLS verified."""
    text = render_nginx(_manifest(tmp_path), _options(tmp_path))
    assert "secret://" not in text
    assert "proxy_ssl_verify off" not in text
    routes = text.count("location = /_interlock/route/")
    assert routes > 0
    assert text.count("proxy_ssl_verify on;") >= routes
    assert 'location ~ "^/orders/[^/]+$"' in text
    assert "proxy_set_header Authorization $il_upstream_auth;" in text


def test_header_only_routes_forward_no_idempotency_key(tmp_path: Path) -> None:
    """The caller's key would meet another caller's under the system's one credential: nginx
    never forwards it (it did, as $http_idempotency_key); routes with a policy pass through
    Interlock, which sends a key derived per client."""
    text = render_nginx(_manifest(tmp_path), _options(tmp_path))
    assert "proxy_set_header Accept $http_accept;" in text
    assert "idempotency" not in text.lower()


@pytest.mark.processes
def test_generated_configuration_passes_nginx_t(tmp_path: Path) -> None:
    """``nginx -t`` accepts what is generated."""
    binary = nginx_or_skip()
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx(_manifest(tmp_path), _options(tmp_path)))
    assert_nginx_accepts(binary, tmp_path, conf)


def test_a_value_that_would_inject_nginx_directives_is_refused(tmp_path: Path) -> None:
    """Options end up in nginx's syntax: a ``;`` or a brace would add directives."""
    options = replace(_options(tmp_path), listen="127.0.0.1:1; include /etc/passwd")
    with pytest.raises(ConfigError, match="cannot be written"):
        render_nginx(_manifest(tmp_path), options)


OVERLAPPING = """\
  overlap:
    source: erp
    target: erp
    client: order-sync
    callers: [oauth-only, cert-sync, every-way]
    purpose: Test overlapping templates
    legal_basis: contract
    retention: 30d
    routes:
      - {{method: POST, path: "/ov/{{x}}", upstream: erp, scope: orders.write}}
      - {{method: GET, path: "/{{y}}/b", upstream: erp, scope: orders.read}}
      - {{method: DELETE, path: "/{{y}}/{{z}}", upstream: erp, scope: orders.write}}
"""


def _location(text: str, matcher: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"    location {matcher} {{")
    end = lines.index("    }", start)
    return [line.strip() for line in lines[start + 1 : end]]


def test_each_method_is_dispatched_to_the_route_the_router_picks(tmp_path: Path) -> None:
    """Overlapping templates get a location of their own, dispatching as the router does.

    ``/ov/b`` fits ``/ov/{x}`` first, but its GET is ``/{y}/b``'s and its DELETE
    ``/{y}/{z}``'s (the router falls through); ``/ov/c``'s GET is no route's.
    """
    manifest = _manifest(tmp_path, MANIFEST + OVERLAPPING)
    text = render_nginx(manifest, _options(tmp_path))
    index = {
        route.path: number
        for number, route in enumerate(
            r for flow in manifest.integrations.values() for r in flow.routes
        )
    }
    exact = _location(text, '= "/ov/b"')
    assert (
        f"if ($request_method = GET) {{ rewrite ^ /_interlock/route/{index['/{y}/b']} last; }}"
        in exact
    )
    assert (
        f"if ($request_method = HEAD) {{ rewrite ^ /_interlock/route/{index['/{y}/b']} last; }}"
        in exact
    )
    assert (
        f"if ($request_method = DELETE) {{ rewrite ^ /_interlock/route/{index['/{y}/{z}']} last; }}"
        in exact
    )
    assert "if ($request_method = POST) { rewrite ^ /_interlock/pass last; }" in exact
    general = _location(text, '~ "^/ov/[^/]+$"')
    assert not any("$request_method = GET" in line for line in general)
    assert text.index('location = "/ov/b"') < text.index('location ~ "^/ov/[^/]+$"')
    assert text.index('location ~ "^/ov/[^/]+$"') < text.index('location ~ "^/[^/]+/b$"')


def test_templates_overlapping_in_too_many_ways_are_refused(tmp_path: Path) -> None:
    """Every meet of templates is a location: past the cap, one clear error, not a huge file."""
    lines = []
    for concrete in range(13):
        segments = [f"s{i}" if i == concrete else f"{{{{p{i}}}}}" for i in range(13)]
        path = "/" + "/".join(segments)
        lines.append(
            f'      - {{{{method: GET, path: "{path}", upstream: erp, scope: orders.read}}}}\n'
        )
    routes = "".join(lines)
    assert routes  # 13 templates of 13 segments, one concrete each: 2^13 meets
    text = OVERLAPPING.split("    routes:\n", maxsplit=1)[0] + "    routes:\n" + routes
    with pytest.raises(ConfigError, match="overlap in more than"):
        render_nginx(_manifest(tmp_path, MANIFEST + text), _options(tmp_path))
