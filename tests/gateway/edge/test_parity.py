"""Edge mode refuses what the embedded gateway refuses: same status, same problem type.

Each case sends the same request through nginx (the generated configuration,
deciding through ``/_interlock/authz``) and straight to the embedded gateway
built from the same manifest and deployment, and compares the answers.
"""

from __future__ import annotations

import http.client
import json
import secrets
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from interlock.crypto.keyfile import write_private_file
from interlock.oauth.dpop import access_token_hash
from tests.gateway.edge.conftest import Edge

pytestmark = pytest.mark.processes

PROBLEM = "urn:interlock:problem:"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
Answer = tuple[int, dict[str, str], Any]


def _same_refusal(edge_answer: Answer, embedded: Answer, status: int, code: str) -> None:
    for status_got, headers, body in (edge_answer, embedded):
        assert status_got == status, body
        assert headers["content-type"].startswith("application/problem+json")
        assert body["type"] == PROBLEM + code
        assert body["status"] == status
        assert headers["x-request-id"] == body["correlation_id"]


def _both(
    edge: Edge, method: str, path: str, headers: Callable[[], dict[str, str]]
) -> tuple[Answer, Answer]:
    return (
        edge.request(method, path, headers(), edge=True),
        edge.request(method, path, headers(), edge=False),
    )


def test_an_allowed_request_reaches_the_upstream_with_the_vaults_credential_only(
    edge: Edge,
) -> None:
    """The ERP gets its own credential (from the vault) and never the caller's key."""
    token, _ = edge.env.key(["orders.read"])
    status, headers, body = edge.request(
        "GET", "/headers/echo/abc", {"X-API-Key": token, "X-Tenant": "t1", "X-Other": "no"}
    )
    assert status == 200, body
    assert body["authorization_ok"] is True  # the ERP checked the vault's credential
    assert body["path"] == "/echo/abc"
    seen = {name.lower() for name in body["headers"]}
    assert "x-api-key" not in seen
    assert "x-other" not in seen  # not on the route's allow-list
    assert body["headers"].get("X-Tenant") == "t1"  # the route's forward_headers
    upstream_headers = {name.lower(): value for name, value in body["headers"].items()}
    assert headers["x-request-id"] == upstream_headers["x-request-id"]


@pytest.mark.parametrize(
    ("name", "path", "status", "code"),
    [
        ("missing", "/orders/1001", 401, "unauthorized"),
        ("invalid", "/orders/1001", 401, "unauthorized"),
        ("in-query", "/orders/1001?api_key=il_abc", 400, "credential-in-url"),
        ("traversal", "/orders/%2e%2e/admin", 400, "bad-path"),
        ("encoded-slash", "/orders/a%2Fb", 400, "bad-path"),
        ("unknown", "/invoices/1", 404, "not-found"),
    ],
)
def test_header_only_refusals_match(
    edge: Edge, name: str, path: str, status: int, code: str
) -> None:
    """Missing and invalid keys, a key in the URL, encoded traversal, unknown paths."""
    headers = {"invalid": {"X-API-Key": "il_" + "x" * 40}}.get(name, {})
    edge_answer, embedded = _both(edge, "GET", path, lambda: dict(headers))
    _same_refusal(edge_answer, embedded, status, code)
    if status == 401:
        assert edge_answer[1]["www-authenticate"] == embedded[1]["www-authenticate"]


def test_an_internal_location_asked_for_from_outside_is_a_404_problem(edge: Edge) -> None:
    """nginx's internal locations answer a problem document, never nginx's HTML page."""
    status, headers, body = edge.request("GET", "/_interlock/pass")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert body["type"] == PROBLEM + "not-found"


def test_wrong_method_is_405_with_allow(edge: Edge) -> None:
    """A method the path does not take: 405 and the Allow header, both ways."""
    edge_answer, embedded = _both(edge, "DELETE", "/orders/1001", dict)
    _same_refusal(edge_answer, embedded, 405, "method-not-allowed")
    assert edge_answer[1]["allow"] == embedded[1]["allow"] == "GET, HEAD"


def test_revoked_key_is_refused(edge: Edge) -> None:
    """A revoked key: 401 at the edge as in the gateway."""
    token, key_id = edge.env.key(["orders.read"])
    assert edge.request("GET", "/orders/1001", {"X-API-Key": token})[0] == 200
    edge.env.keys.revoke(key_id)
    time.sleep(1.1)  # the key cache's second
    edge_answer, embedded = _both(edge, "GET", "/orders/1001", lambda: {"X-API-Key": token})
    _same_refusal(edge_answer, embedded, 401, "unauthorized")


def test_wrong_scope_is_refused(edge: Edge) -> None:
    """A key without orders.read: 403 insufficient-scope."""
    token, _ = edge.env.key(["orders.write"])
    edge_answer, embedded = _both(edge, "GET", "/orders/1001", lambda: {"X-API-Key": token})
    _same_refusal(edge_answer, embedded, 403, "insufficient-scope")


def test_another_integrations_route_is_refused(edge: Edge) -> None:
    """crm-sync holds orders.read, but order-sync's routes are not its integration's."""
    token = edge.env.keys.create("crm-sync", ["orders.read"]).token
    edge.env.issued_tokens.append(token)
    edge_answer, embedded = _both(edge, "GET", "/orders/1001", lambda: {"X-API-Key": token})
    _same_refusal(edge_answer, embedded, 403, "access-denied")
    assert edge.request("GET", "/crm/orders/1001", {"X-API-Key": token})[0] == 200


def test_rate_limit_is_429_with_retry_after(edge: Edge) -> None:
    """/limited allows order-sync 3 an hour: the fourth is 429 with Retry-After, both ways.

    The edge and the gateway decide with the same limiter: the bucket spent
    through nginx is spent for the gateway too.
    """
    token, _ = edge.env.key(["orders.read"])
    header = {"X-API-Key": token}
    for _ in range(3):
        status, headers, _ = edge.request("GET", "/limited/1001", header)
        assert status == 200
        assert "ratelimit" in headers
    edge_answer, embedded = _both(edge, "GET", "/limited/1001", lambda: dict(header))
    _same_refusal(edge_answer, embedded, 429, "rate-limited")
    for _, headers, body in (edge_answer, embedded):
        assert int(headers["retry-after"]) > 0
        assert headers["ratelimit-policy"]
        assert body["violated-policies"]


def _proof(key: ECKey, method: str, url: str, token: str | None = None) -> str:
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(12),
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
    }
    if token is not None:
        claims["ath"] = access_token_hash(token)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=["ES256"])


def _token(edge: Edge, secret: str, key: ECKey | None) -> str:
    """A token for oauth-only, asked through nginx (Interlock's own endpoint behind it)."""
    public = f"https://127.0.0.1:{edge.nginx_port}"
    headers = {**FORM, **edge.env.basic(secret)}
    if key is not None:
        headers["DPoP"] = _proof(key, "POST", public + "/oauth2/token")
    context = ssl.create_default_context(cafile=str(edge.env.ca_file))
    connection = http.client.HTTPSConnection("127.0.0.1", edge.nginx_port, context=context)
    try:
        body = urlencode({"grant_type": "client_credentials"})
        connection.request("POST", "/oauth2/token", body=body, headers=headers)
        response = connection.getresponse()
        payload = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 200, payload
    token = str(payload["access_token"])
    edge.env.issued_tokens.append(token)
    return token


def test_bearer_jwt_is_decided_at_the_edge(edge: Edge) -> None:
    """A token from the token endpoint (through nginx) opens the route at the edge."""
    with edge.env.client_secret() as secret:
        token = _token(edge, secret, None)
    bearer = {"Authorization": f"Bearer {token}"}
    assert edge.request("GET", "/orders/1001", bearer)[0] == 200
    edge_answer, embedded = _both(edge, "GET", "/crm/orders/1001", lambda: dict(bearer))
    _same_refusal(edge_answer, embedded, 403, "access-denied")


def test_dpop_proof_replay_is_refused(edge: Edge) -> None:
    """A DPoP proof used twice: the second use is 401 at the edge as in the gateway."""
    key = ECKey.generate_key("P-256", private=True)
    with edge.env.client_secret() as secret:
        token = _token(edge, secret, key)
    url = f"https://127.0.0.1:{edge.nginx_port}/orders/1001"
    answers = []
    for through_edge in (True, False):
        headers = {"Authorization": f"DPoP {token}", "DPoP": _proof(key, "GET", url, token)}
        assert edge.request("GET", "/orders/1001", headers, edge=through_edge)[0] == 200
        answers.append(edge.request("GET", "/orders/1001", headers, edge=through_edge))
    _same_refusal(answers[0], answers[1], 401, "unauthorized")
    assert answers[0][1]["www-authenticate"].startswith("DPoP ")
    assert answers[0][1]["www-authenticate"] == answers[1][1]["www-authenticate"]


def _certificate(edge: Edge, name: str) -> tuple[str, tuple[Path, Path]]:
    issued = edge.pki.issue_client(name)
    cert, key = edge.work / f"{issued.serial}.pem", edge.work / f"{issued.serial}.key"
    cert.write_bytes(issued.certificate_pem)
    write_private_file(key, issued.private_key_pem)
    return issued.serial, (cert, key)


def test_revoked_certificate_is_refused(edge: Edge) -> None:
    """mTLS through nginx's verified certificate; once revoked, 401 certificate-revoked.

    The embedded gateway refuses a revoked certificate at the handshake, and on
    a connection opened before the revocation on its next request: that one is
    compared, with a fresh connection through nginx.
    """
    serial, files = _certificate(edge, "cert-sync")
    assert edge.request("GET", "/mtls/orders/1001", certificate=files)[0] == 200
    context = ssl.create_default_context(cafile=str(edge.env.ca_file))
    context.load_cert_chain(*files)
    kept = http.client.HTTPSConnection("127.0.0.1", edge.gateway.port, context=context)
    try:
        kept.request("GET", "/mtls/orders/1001")
        first = kept.getresponse()
        first.read()
        assert first.status == 200
        edge.pki.revoke(serial)
        time.sleep(1.5)  # the CRL watcher looks every second
        kept.request("GET", "/mtls/orders/1001")
        response = kept.getresponse()
        embedded = (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            json.loads(response.read()),
        )
    finally:
        kept.close()
    edge_answer = edge.request("GET", "/mtls/orders/1001", certificate=files)
    _same_refusal(edge_answer, embedded, 401, "certificate-revoked")


def test_a_certificate_header_sent_by_the_caller_is_not_believed(edge: Edge) -> None:
    """nginx overwrites the certificate headers: a caller cannot claim a certificate."""
    _, (cert, _) = _certificate(edge, "cert-sync")
    forged = {
        "X-Interlock-Client-Cert": cert.read_text().replace("\n", "%0A"),
        "X-Interlock-Client-Verify": "SUCCESS",
    }
    status, _, body = edge.request("GET", "/mtls/orders/1001", forged)
    assert status == 401, body


def test_every_decision_is_one_audit_entry(edge: Edge) -> None:
    """Allowed and refused decisions alike: one gateway.request entry each."""
    token, _ = edge.env.key(["orders.read"])
    ids = []
    for headers, path in (
        ({"X-API-Key": token}, "/orders/1001"),
        ({}, "/orders/1001"),
        ({"X-API-Key": token}, "/orders/%2e%2e/x"),
    ):
        _, answer_headers, _ = edge.request("GET", path, headers)
        ids.append(answer_headers["x-request-id"])
    for correlation_id in ids:
        entries = edge.env.audit_entries(correlation_id, "gateway.request")
        assert len(entries) == 1, correlation_id
    allowed = edge.env.audit_entries(ids[0], "gateway.request")[0]
    assert allowed["outcome"]["result"] == "success"
    assert allowed["actor"] == "client:order-sync"


def test_a_route_that_needs_the_body_passes_through_interlock(edge: Edge) -> None:
    """POST with a JSON body: Interlock's own pipeline (validation) answers behind nginx."""
    token, _ = edge.env.key(["orders.write"])
    context = ssl.create_default_context(cafile=str(edge.env.ca_file))
    connection = http.client.HTTPSConnection("127.0.0.1", edge.nginx_port, context=context)
    try:
        headers = {"X-API-Key": token, "Content-Type": "application/json"}
        connection.request("POST", "/orders/1001/notes", body=b'{"note": "hi"}', headers=headers)
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 200, body
    assert body["path"] == "/echo/notes/1001"


@pytest.mark.parametrize(
    ("request_line", "extra", "status"),
    [
        # Two Host headers: nginx's own 400, whatever the target says.
        (b"GET /%22,%22injected%22:true,%22x%22:%22 HTTP/1.1", b"Host: b\r\n", 400),
        (b"GET /a%0A%22%5C HTTP/1.1", b"Host: b\r\n", 400),
        (b"GET /orders/%22%5C%0A/../x%22 HTTP/1.1", b"Host: b\r\n", 400),
        # An internal location asked for from outside: nginx's own 404.
        (b"GET /_interlock/route/0 HTTP/1.1", b"", 404),
        # A body over the route's max_body on a route decided at the edge: nginx's own 413.
        (b"GET /echo/%22%5C HTTP/1.1", b"Content-Length: 99999999\r\n", 413),
    ],
)
def test_nginx_s_own_problem_documents_are_json_whatever_the_target(
    edge: Edge, request_line: bytes, extra: bytes, status: int
) -> None:
    """Quotes, backslashes and newlines in the target never reach nginx's own JSON bodies."""
    host = f"127.0.0.1:{edge.nginx_port}".encode()
    head, body = edge.raw(
        request_line + b"\r\nHost: " + host + b"\r\n" + extra + b"Connection: close\r\n\r\n"
    )
    assert head.split(b"\r\n")[0].startswith(b"HTTP/1.1 %d " % status), head
    document = json.loads(body)
    assert set(document) == {"type", "title", "status", "detail"}
    assert document["status"] == status
    assert document["type"].startswith(PROBLEM)


def test_a_401_carries_one_www_authenticate(edge: Edge) -> None:
    """nginx's auth_request copies the decision's WWW-Authenticate on 401: never a second copy."""
    host = f"127.0.0.1:{edge.nginx_port}".encode()
    head, _ = edge.raw(
        b"GET /orders/1001 HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    )
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 401 ")
    challenges = [line for line in lines if line.lower().startswith(b"www-authenticate:")]
    assert challenges == [b'WWW-Authenticate: Bearer realm="interlock"']
    token, _ = edge.env.key(["orders.write"])  # 403 insufficient-scope keeps its challenge
    key = b"X-API-Key: " + token.encode() + b"\r\n"
    head, _ = edge.raw(
        b"GET /orders/1001 HTTP/1.1\r\nHost: " + host + b"\r\n" + key + b"Connection: close\r\n\r\n"
    )
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 403 ")
    assert len([line for line in lines if line.lower().startswith(b"www-authenticate:")]) == 1
