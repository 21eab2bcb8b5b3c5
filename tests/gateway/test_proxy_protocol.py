"""INTERLOCK_PROXY_PROTOCOL=v2: a TCP balancer in passthrough mode names the client.

The test client (127.0.0.1) plays the balancer: it writes the PROXY v2 header,
then the client's TLS handshake and request. 127.0.0.2 plays a direct caller.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import Any

import pytest

from interlock.gateway.proxy_v2 import SIGNATURE
from interlock.testing.gateway import Env, running_gateway

CLIENT = IPv4Address("198.51.100.7")


@pytest.fixture(scope="module")
def passthrough(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A gateway behind a TCP balancer at 127.0.0.1 that speaks PROXY v2."""
    with running_gateway(
        tmp_path_factory.mktemp("passthrough"),
        trusted_proxies="127.0.0.1/32",
        proxy_protocol="v2",
        audit_pseudonymise_ip=False,
    ) as env:
        yield env


def _proxy_header(source: IPv4Address | None) -> bytes:
    if source is None:  # LOCAL: the balancer's own connection
        return SIGNATURE + struct.pack("!BBH", 0x20, 0x00, 0)
    body = source.packed + IPv4Address("127.0.0.1").packed + struct.pack("!HH", 51000, 8443)
    return SIGNATURE + struct.pack("!BBH", 0x21, 0x11, len(body)) + body


def _get(
    env: Env, path: str, headers: dict[str, str], *, before_tls: bytes = b"", source: str = ""
) -> tuple[int, dict[str, str], Any]:
    """One HTTP/1.1 request over TLS, ``before_tls`` written on the bare connection first."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(
        ("127.0.0.1", env.port), timeout=10, source_address=(source, 0) if source else None
    ) as plain:
        plain.sendall(before_tls)
        with env.context().wrap_socket(plain, server_hostname="127.0.0.1") as tls:
            tls.sendall(request)
            chunks = []
            while chunk := tls.recv(65536):
                chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    found = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
    return int(status_line.split()[1]), found, json.loads(body) if body else None


def _audited_address(env: Env, correlation_id: str) -> str | None:
    """The client address on the first audit entry of ``correlation_id``."""
    entries = env.audit_entries(correlation_id)
    assert entries, f"no audit entry for {correlation_id}"
    address: str | None = entries[0]["client_ip"]
    return address


@pytest.mark.processes
def test_the_client_the_header_names_is_audited_and_told_upstream(passthrough: Env) -> None:
    good, _ = passthrough.key(["orders.read"])
    status, answer, body = _get(
        passthrough, "/echo/hello", {"X-API-Key": good}, before_tls=_proxy_header(CLIENT)
    )
    assert status == 200
    assert _audited_address(passthrough, answer["x-request-id"]) == str(CLIENT)
    forwarded = {k.lower(): v for k, v in body["headers"].items()}
    assert forwarded["forwarded"].startswith(f'for="{CLIENT}";')


@pytest.mark.processes
def test_the_named_client_cannot_name_another_in_a_header(passthrough: Env) -> None:
    """X-Forwarded-For is read only from a trusted proxy, and the header's source is not one."""
    good, _ = passthrough.key(["orders.read"])
    headers = {"X-API-Key": good, "X-Forwarded-For": "6.6.6.6"}
    status, answer, _ = _get(passthrough, "/echo/hello", headers, before_tls=_proxy_header(CLIENT))
    assert status == 200
    assert _audited_address(passthrough, answer["x-request-id"]) == str(CLIENT)


@pytest.mark.processes
def test_a_local_header_keeps_the_balancer_as_the_peer(passthrough: Env) -> None:
    good, _ = passthrough.key(["orders.read"])
    status, answer, _ = _get(
        passthrough, "/echo/hello", {"X-API-Key": good}, before_tls=_proxy_header(None)
    )
    assert status == 200
    assert _audited_address(passthrough, answer["x-request-id"]) == "127.0.0.1"


@pytest.mark.processes
def test_the_balancer_must_send_the_header(passthrough: Env) -> None:
    """No guessing (the specification's rule): without a header the connection is closed."""
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _get(passthrough, "/healthz", {})


@pytest.mark.processes
def test_a_direct_caller_is_served_without_a_header_and_cannot_send_one(passthrough: Env) -> None:
    good, _ = passthrough.key(["orders.read"])
    status, answer, _ = _get(passthrough, "/echo/hello", {"X-API-Key": good}, source="127.0.0.2")
    assert status == 200
    assert _audited_address(passthrough, answer["x-request-id"]) == "127.0.0.2"
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _get(passthrough, "/healthz", {}, before_tls=_proxy_header(CLIENT), source="127.0.0.2")
