"""The decision endpoint unreachable, or asked by someone else: closed, never open."""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from interlock.errors import ConfigError
from interlock.gateway.edge.decision import EdgeDecisions
from interlock.gateway.edge.listener import MAX_SOCKET_PATH, start_decisions
from interlock.gateway.edge.nginx import render_nginx
from interlock.gateway.edge.protocol import CONVENTIONS
from tests.gateway.edge.conftest import (
    Edge,
    free_port,
    nginx_options,
    nginx_or_skip,
    start_nginx,
    stop_nginx,
)

pytestmark = pytest.mark.processes


def test_unreachable_decision_endpoint_is_a_503_problem(edge: Edge) -> None:
    """nginx whose decision socket is gone answers 503 and forwards nothing."""
    binary = nginx_or_skip()
    work = edge.work / "no-decision"
    work.mkdir()
    port = free_port()
    options = replace(
        nginx_options(work, edge.env, edge.gateway, port), decision_socket=work / "gone.sock"
    )
    conf = work / "nginx.conf"
    conf.write_text(render_nginx(edge.env.gateway.gateway.manifest, options))
    process = start_nginx(binary, conf, port)
    try:
        token, _ = edge.env.key(["orders.read"])
        edge.nginx_port, saved = port, edge.nginx_port
        try:
            status, headers, body = edge.request("GET", "/orders/1001", {"X-API-Key": token})
        finally:
            edge.nginx_port = saved
    finally:
        stop_nginx(process)
    assert status == 503
    assert headers["content-type"] == "application/problem+json"
    assert body["type"] == "urn:interlock:problem:decision-unavailable"
    assert "customer" not in body


def test_a_decision_request_from_another_user_is_refused(edge: Edge) -> None:
    """The socket's peer must be the proxy's user: anyone else gets 403 and no decision."""
    decisions = EdgeDecisions(lambda: edge.gateway.front.current, CONVENTIONS["nginx"])
    path = edge.work / "other.sock"
    listener = asyncio.run_coroutine_threadsafe(
        start_decisions(decisions, path, {os.getuid() + 1}), edge.env.loop
    ).result(timeout=10)
    try:
        assert path.stat().st_mode & 0o777 == 0o660
        token, _ = edge.env.key(["orders.read"])
        request = (
            "GET /_interlock/authz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "X-Original-Method: GET\r\nX-Original-URI: /orders/1001\r\n"
            f"X-API-Key: {token}\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(path))
            client.sendall(request)
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
    finally:
        asyncio.run_coroutine_threadsafe(listener.stop(), edge.env.loop).result(timeout=10)
    assert answer.startswith(b"HTTP/1.1 403")
    assert b"access-denied" in answer
    assert b"X-Interlock-Upstream-Authorization" not in answer


def test_a_socket_path_longer_than_unix_allows_is_refused_by_name(tmp_path: Path) -> None:
    """A path past sun_path's 107 bytes is a one-line error with the limit, not a bare failure."""
    decisions = EdgeDecisions(lambda: None, CONVENTIONS["nginx"])
    path = tmp_path / ("d" * (MAX_SOCKET_PATH - len(os.fsencode(tmp_path)))) / "authz.sock"
    with pytest.raises(ConfigError, match=r"at most 107 bytes \(this one has \d+\)"):
        asyncio.run(start_decisions(decisions, path, {os.getuid()}))
    assert not path.exists()
