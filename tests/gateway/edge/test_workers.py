"""Several decision processes behind one nginx: every one used, a dead one skipped, none: 503."""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web

from interlock.cli.main import main
from interlock.errors import ConfigError
from interlock.gateway.edge.decision import EdgeDecisions
from interlock.gateway.edge.listener import DecisionListener, start_decisions
from interlock.gateway.edge.nginx import render_nginx
from interlock.gateway.edge.protocol import CONVENTIONS, MAX_DECISION_WORKERS, worker_socket
from interlock.testing.gateway import MANIFEST
from tests.conftest import isolate_cli
from tests.gateway.edge.conftest import (
    Edge,
    assert_nginx_accepts,
    free_port,
    nginx_options,
    nginx_or_skip,
    start_nginx,
    stop_nginx,
)
from tests.gateway.edge.test_protocol import _manifest, _options


class _Counting(EdgeDecisions):
    """The gateway's decisions, counted: which worker answered."""

    count = 0

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Count, then decide as every worker does."""
        self.count += 1
        return await super().handle(request)


def test_worker_sockets_are_numbered_beside_the_first() -> None:
    """Worker 1 keeps the name (one process needs no number); the others are numbered."""
    base = Path("/run/interlock/authz.sock")
    assert worker_socket(base, 1) == base
    assert worker_socket(base, 2) == Path("/run/interlock/authz-2.sock")
    assert worker_socket(base, MAX_DECISION_WORKERS).name == f"authz-{MAX_DECISION_WORKERS}.sock"
    for outside in (0, -1, MAX_DECISION_WORKERS + 1):
        with pytest.raises(ConfigError, match="numbered 1 to"):
            worker_socket(base, outside)


def test_the_decision_upstream_lists_every_worker_and_skips_an_unreachable_one(
    tmp_path: Path,
) -> None:
    """One ``server`` per worker socket; a failed try goes to the next within the deadline."""
    options = replace(_options(tmp_path), decision_workers=3)
    text = render_nginx(_manifest(tmp_path), options)
    upstream = next(line for line in text.splitlines() if "upstream interlock_decisions" in line)
    for name in ("authz.sock", "authz-2.sock", "authz-3.sock"):
        assert f"server unix:{tmp_path / name};" in upstream
    assert "authz-4.sock" not in upstream
    assert "proxy_next_upstream error timeout;" in text
    assert f"proxy_next_upstream_timeout {options.decision_seconds:g}s;" in text
    for outside in (0, MAX_DECISION_WORKERS + 1):
        with pytest.raises(ConfigError, match="decision workers"):
            render_nginx(_manifest(tmp_path), replace(options, decision_workers=outside))


@pytest.mark.processes
def test_nginx_spreads_decisions_over_the_workers_and_fails_closed_without_any(
    edge: Edge,
) -> None:
    """Both workers answer; one stopped, the other answers all; both stopped: 503 problem."""
    binary = nginx_or_skip()
    work = edge.work / "workers"
    work.mkdir()
    port = free_port()
    options = replace(
        nginx_options(work, edge.env, edge.gateway, port),
        decision_socket=work / "authz.sock",
        decision_workers=2,
    )
    workers = [
        _Counting(lambda: edge.gateway.front.current, CONVENTIONS["nginx"]) for _ in range(2)
    ]
    listeners: list[DecisionListener] = [
        asyncio.run_coroutine_threadsafe(
            start_decisions(
                decisions, worker_socket(options.decision_socket, number), {os.getuid()}
            ),
            edge.env.loop,
        ).result(timeout=10)
        for number, decisions in enumerate(workers, start=1)
    ]
    conf = work / "nginx.conf"
    conf.write_text(render_nginx(edge.env.gateway.gateway.manifest, options))
    process = start_nginx(binary, conf, port)
    token, _ = edge.env.key(["orders.read"])
    edge.nginx_port, saved = port, edge.nginx_port
    try:

        def statuses(count: int) -> list[int]:
            return [
                edge.request("GET", "/orders/1001", {"X-API-Key": token})[0] for _ in range(count)
            ]

        assert statuses(20) == [200] * 20
        assert workers[0].count > 0
        assert workers[1].count > 0
        assert workers[0].count + workers[1].count == 20
        asyncio.run_coroutine_threadsafe(listeners[0].stop(), edge.env.loop).result(timeout=10)
        before = workers[1].count
        assert statuses(10) == [200] * 10  # the first worker's socket is gone: skipped
        assert workers[1].count == before + 10
        asyncio.run_coroutine_threadsafe(listeners[1].stop(), edge.env.loop).result(timeout=10)
        status, headers, body = edge.request("GET", "/orders/1001", {"X-API-Key": token})
        assert status == 503
        assert headers["content-type"] == "application/problem+json"
        assert body["type"] == "urn:interlock:problem:decision-unavailable"
    finally:
        edge.nginx_port = saved
        stop_nginx(process)
        for listener in listeners:
            asyncio.run_coroutine_threadsafe(listener.stop(), edge.env.loop).result(timeout=10)


@pytest.mark.processes
def test_a_second_process_on_a_live_socket_is_refused_and_the_first_keeps_it(
    edge: Edge,
) -> None:
    """Two workers given the same number: the second must not take the first's socket."""
    path = edge.work / "same.sock"
    decisions = EdgeDecisions(lambda: edge.gateway.front.current, CONVENTIONS["nginx"])
    first = asyncio.run_coroutine_threadsafe(
        start_decisions(decisions, path, {os.getuid()}), edge.env.loop
    ).result(timeout=10)
    try:
        with pytest.raises(ConfigError, match="another process is listening"):
            asyncio.run_coroutine_threadsafe(
                start_decisions(decisions, path, {os.getuid()}), edge.env.loop
            ).result(timeout=10)
        with socket.socket(socket.AF_UNIX) as client:  # still the first one's, answering
            client.settimeout(5)
            client.connect(str(path))
            client.sendall(b"GET /elsewhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 404 ")
    finally:
        asyncio.run_coroutine_threadsafe(first.stop(), edge.env.loop).result(timeout=10)
    # Gone with its process, the socket file is stale and taken over.
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    second = asyncio.run_coroutine_threadsafe(
        start_decisions(decisions, path, {os.getuid()}), edge.env.loop
    ).result(timeout=10)
    asyncio.run_coroutine_threadsafe(second.stop(), edge.env.loop).result(timeout=10)


def test_edge_serve_refuses_a_worker_number_beyond_interlock_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--worker 2`` of one declared worker: one line naming the setting, nothing started."""
    isolate_cli(monkeypatch, tmp_path)
    assert main(["edge", "serve", "--worker", "2"]) == 1
    error = capsys.readouterr().err
    assert "--worker 2" in error
    assert "INTERLOCK_WORKERS" in error
    assert not (tmp_path / "data" / "edge").exists()


@pytest.mark.processes
def test_edge_nginx_decision_workers_reach_the_configuration_and_survive_a_reload_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--decision-workers 2``: both sockets in nginx.conf, nginx -t passes, edge.json keeps it."""
    binary = nginx_or_skip()
    manifest = tmp_path / "interlock.yaml"
    manifest.write_text(MANIFEST.format(erp_port=9443, rogue_port=9444))
    isolate_cli(monkeypatch, tmp_path, MANIFEST=str(manifest))
    assert main(["init"]) == 0
    out = tmp_path / "out"
    user = ["--user", "root"] if os.geteuid() == 0 else []
    command = ["edge", "nginx", "-o", str(out), "--listen", "127.0.0.1:19443", *user]
    assert main([*command, "--decision-workers", "2"]) == 0
    text = (out / "nginx.conf").read_text()
    assert "authz-2.sock;" in text
    assert_nginx_accepts(binary, out, out / "nginx.conf")
    assert '"decision_workers": 2' in (out / "edge.json").read_text()


def test_edge_serve_workers_without_redis_are_refused_before_anything_is_issued(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two declared workers, no Redis, no ``divide``: one line, no certificate, no socket."""
    manifest = tmp_path / "interlock.yaml"
    manifest.write_text(MANIFEST.format(erp_port=9443, rogue_port=9444))
    isolate_cli(monkeypatch, tmp_path, MANIFEST=str(manifest), WORKERS="2")
    assert main(["init"]) == 0
    capsys.readouterr()
    user = "root" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    assert main(["edge", "serve", "--worker", "1", "--proxy-user", user]) == 1
    err = capsys.readouterr().err
    assert "INTERLOCK_REDIS_URL" in err
    assert "certificate issued" not in err
    assert not (tmp_path / "data" / "edge").exists()


def test_edge_serve_on_a_socket_another_process_listens_on_is_refused_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two workers with the same number: the second stops before issuing anything."""
    manifest = tmp_path / "interlock.yaml"
    manifest.write_text(MANIFEST.format(erp_port=9443, rogue_port=9444))
    isolate_cli(monkeypatch, tmp_path, MANIFEST=str(manifest))
    assert main(["init"]) == 0
    capsys.readouterr()
    path = tmp_path / "run" / "authz.sock"
    path.parent.mkdir()
    user = "root" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen(1)
        assert main(["edge", "serve", "--socket", str(path), "--proxy-user", user]) == 1
        assert path.is_socket()  # still the other process's
    err = capsys.readouterr().err
    assert "another process is listening on it" in err
    assert "certificate issued" not in err
