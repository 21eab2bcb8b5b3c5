"""The connection caps and the port check, without a gateway (issue 18 items 5 and 12b)."""

from __future__ import annotations

import json
import socket

import pytest

from interlock.errors import ConfigError
from interlock.gateway.connections import (
    ConnectionCounter,
    ConnectionLimits,
    over_capacity_response,
)
from interlock.gateway.preflight import check_port_free


def test_the_listener_cap_refuses_whatever_the_address() -> None:
    """Three connections in all: the fourth is over the listener's cap, from any address."""
    counter = ConnectionCounter(ConnectionLimits(max_connections=3, max_per_address=2))
    assert [counter.admit(a) for a in ("10.0.0.1", "10.0.0.1", "10.0.0.2")] == [None] * 3
    assert counter.admit("10.0.0.3") == "listener"
    counter.release("10.0.0.2")
    assert counter.admit("10.0.0.3") is None
    assert counter.total == 3


def test_the_address_cap_counts_each_address_apart() -> None:
    """Two per address: the third from one address is refused, another address is not."""
    counter = ConnectionCounter(ConnectionLimits(max_connections=100, max_per_address=2))
    assert counter.admit("10.0.0.1") is None
    assert counter.admit("10.0.0.1") is None
    assert counter.admit("10.0.0.1") == "address"
    assert counter.admit("10.0.0.2") is None
    counter.release("10.0.0.1")
    assert counter.admit("10.0.0.1") is None


def test_the_over_capacity_answer_is_a_closing_503_problem() -> None:
    """A complete HTTP/1.1 answer: status, Connection: close, length, no versions."""
    head, _, body = over_capacity_response("address", "c0ffee").partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    assert "Connection: close" in lines
    assert "Server: interlock" in lines
    assert f"Content-Length: {len(body)}" in lines
    problem = json.loads(body)
    assert problem["type"] == "urn:interlock:problem:too-many-connections"
    assert problem["correlation_id"] == "c0ffee"


def test_a_listening_port_is_in_use_and_a_free_one_is_not() -> None:
    """The check names the port; once it is released the check passes."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port 127.0.0.1:{port} is in use"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", 0)  # any free port


def test_a_port_shared_with_reuse_port_is_free_for_another_worker() -> None:
    """--reuse-port: other gateway processes sharing the port do not make it in use."""
    with socket.socket() as shared:
        shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        shared.bind(("127.0.0.1", 0))
        shared.listen()
        port = shared.getsockname()[1]
        check_port_free("127.0.0.1", port, reuse_port=True)
        with pytest.raises(ConfigError, match="is in use"):
            check_port_free("127.0.0.1", port)
