"""Hostile input over raw TLS: malformed credentials, smuggling, traversal, oversize."""

from __future__ import annotations

import json

import pytest

from interlock.testing.gateway import Env


def _status(response: bytes) -> int:
    # The parser answers in HTTP/1.0 when it failed before reading the version.
    assert response.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), response[:200]
    return int(response.split(b" ", 2)[1])


def _request(path: bytes, headers: bytes = b"", method: bytes = b"GET") -> bytes:
    return (
        method
        + b" "
        + path
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + headers
        + b"Connection: close\r\n\r\n"
    )


@pytest.mark.parametrize(
    "authorization",
    [
        b"Authorization: Bearer\r\n",
        b"Authorization: Bearer \r\n",
        b"Authorization: Basic dXNlcjpwYXNz\r\n",
        b"Authorization: Bearer a b\r\n",
        b"Authorization: Bearer " + b"A" * 600 + b"\r\n",
        b"Authorization: ilk_nothing\r\n",
        b"Authorization: Bearer ilk_AAAAAAAAAAAA_" + b"B" * 49 + b"\r\n",
    ],
)
def test_malformed_authorization_is_401(env: Env, authorization: bytes) -> None:
    """Wrong scheme, empty, spaced, oversized or garbage credentials: 401 problem."""
    response = env.raw(_request(b"/orders/1001", authorization))
    assert _status(response) == 401
    assert b"application/problem+json" in response


def test_two_credentials_are_400(env: Env) -> None:
    """Authorization and X-API-Key together is ambiguous."""
    token, _ = env.key(["orders.read"])
    headers = f"Authorization: Bearer {token}\r\nX-API-Key: {token}\r\n".encode()
    assert _status(env.raw(_request(b"/orders/1001", headers))) == 400


def test_duplicate_authorization_headers_are_400(env: Env) -> None:
    """Two Authorization headers are refused, not merged or first-wins."""
    token, _ = env.key(["orders.read"])
    headers = f"Authorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n".encode()
    assert _status(env.raw(_request(b"/orders/1001", headers))) == 400


@pytest.mark.parametrize(
    "path",
    [
        b"/orders/..%2f..%2fadmin",
        b"/orders/%2e%2e/orders",
        b"/orders/%2E%2E",
        b"/orders/./1001",
        b"/orders/../orders/1001",
        b"//orders/1001",
        b"/orders//1001",
        b"/orders/1001;jsessionid=x",
        b"/orders/1001%00",
        b"/orders/%ff",
        b"/orders/%c0%ae%c0%ae",
        b"/orders/1001%5c..%5cadmin",
        b"/orders/%zz",
    ],
)
def test_traversal_and_ambiguous_paths_are_refused(env: Env, path: bytes) -> None:
    """Encoded traversal, empty segments, ; parameters, NUL and bad UTF-8 never route."""
    token, _ = env.key(["orders.read"])
    response = env.raw(_request(path, f"Authorization: Bearer {token}\r\n".encode()))
    assert _status(response) == 400
    assert b"application/problem+json" in response


def test_encoded_slash_in_a_parameter_cannot_change_the_upstream_path(env: Env) -> None:
    """A parameter is one segment; it is re-encoded so it can never add segments upstream."""
    token, _ = env.key(["orders.read"])
    response = env.raw(_request(b"/echo/a%20b", f"Authorization: Bearer {token}\r\n".encode()))
    assert _status(response) == 200
    body = json.loads(response.partition(b"\r\n\r\n")[2])
    assert body["path"] == "/echo/a%20b"


def test_non_utf8_bytes_in_the_request_line_are_400(env: Env) -> None:
    """Raw high bytes in the target are refused before routing."""
    assert _status(env.raw(_request(b"/orders/\xff\xfe"))) == 400


def test_content_length_with_transfer_encoding_is_400(env: Env) -> None:
    """CL + TE (request smuggling, RFC 9112 §6.1) is refused."""
    token, _ = env.key(None)
    raw = (
        b"POST /orders/1001/notes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"0\r\n\r\n"
    )
    assert _status(env.raw(raw)) == 400


def test_conflicting_content_lengths_are_400(env: Env) -> None:
    """Two different Content-Length values are refused."""
    raw = (
        b"POST /orders/1001/notes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}"
    )
    assert _status(env.raw(raw)) == 400


def test_oversized_header_is_refused_without_echoing_it(env: Env) -> None:
    """A header line over 16 KiB is refused with a problem that does not quote the input."""
    token, _ = env.key(["orders.read"])
    big = b"X-Big: " + token.encode() + b"a" * 17000 + b"\r\n"
    response = env.raw(_request(b"/orders/1001", big))
    assert _status(response) in {400, 431}
    assert b"application/problem+json" in response
    assert token.encode() not in response
    assert token not in env.logs.getvalue()


def test_too_many_headers_are_refused(env: Env) -> None:
    """More than 128 header fields are refused."""
    headers = b"".join(f"X-H{i}: v\r\n".encode() for i in range(200))
    assert _status(env.raw(_request(b"/orders/1001", headers))) in {400, 431}


def test_overlong_target_is_refused(env: Env) -> None:
    """A request line beyond the limits is refused."""
    assert _status(env.raw(_request(b"/orders/" + b"1" * 9000))) in {400, 414}


def test_key_in_the_query_string_is_400_saying_why(env: Env) -> None:
    """A key in the URL is refused with an explanation (and never logged)."""
    token, _ = env.key(["orders.read"])
    status, _, body = env.request("GET", f"/orders/1001?api_key={token}")
    assert status == 400
    assert "query string" in body["detail"]
    assert token not in env.logs.getvalue()


def test_oversized_body_is_413(env: Env) -> None:
    """Bodies over 1 MiB are refused with a problem."""
    token, _ = env.key(None)
    status, headers, _ = env.request(
        "POST", "/orders/1001/notes", {"Authorization": f"Bearer {token}"}, b"x" * (1024 * 1024 + 1)
    )
    assert status == 413
    assert headers["content-type"].startswith("application/problem+json")
