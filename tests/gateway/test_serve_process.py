"""``interlock serve`` as a real process: SIGHUP reloads, SIGTERM drains in-flight requests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from interlock.testing.gateway import MANIFEST, Env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, context: ssl.SSLContext, path: str, token: str) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _wait_ready(port: int, process: subprocess.Popen[bytes], ca_file: Path) -> ssl.SSLContext:
    """Until /healthz answers 200: the socket is bound before the gateway is assembled,
    and until then every request is answered 503 (service-starting), by design.

    Returns a context trusting ``ca_file``, read once serve listens (it writes the file first).
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("serve exited early")
        with socket.socket() as sock:
            listening = sock.connect_ex(("127.0.0.1", port)) == 0
        if listening:
            context = ssl.create_default_context(cafile=str(ca_file))
            if _get(port, context, "/healthz", "-") == 200:
                return context
        time.sleep(0.1)
    raise AssertionError("serve did not become ready")


def test_sighup_reloads_and_sigterm_drains(env: Env, tmp_path: Path) -> None:
    """A new route appears after SIGHUP; a slow request in flight at SIGTERM still completes.

    The data-subject request API is served too (scope privacy.admin).
    """
    erp_port = env.gateway.gateway.manifest.systems["erp"].url.rsplit(":", 1)[1]
    rogue_port = env.gateway.gateway.manifest.systems["rogue"].url.rsplit(":", 1)[1]
    manifest = tmp_path / "interlock.yaml"
    text = MANIFEST.format(erp_port=erp_port, rogue_port=rogue_port)
    manifest.write_text(
        text.replace(
            '      - {method: GET, path: "/orders", upstream: erp, upstream_path: "/sap/opu/odata/orders", scope: orders.read}\n',
            "",
        )
    )
    token, _ = env.key(["orders.read"])
    desk = env.keys.create("privacy-desk", ["privacy.admin"]).token
    port = _free_port()
    settings = env.deployment.settings
    log_path = tmp_path / "serve.log"
    log_file = log_path.open("w")
    process = subprocess.Popen(  # noqa: S603  (our own CLI, fixed arguments)
        [
            sys.executable,
            "-m",
            "interlock",
            "serve",
            "--manifest",
            str(manifest),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env={
            **os.environ,
            "INTERLOCK_DATA_DIR": str(settings.data_dir),
            "INTERLOCK_DATABASE_URL": settings.store_url,
            "INTERLOCK_LOG_FORMAT": "json",
            "INTERLOCK_METRICS_LISTEN": "127.0.0.1:0",  # never 9464: tests run side by side
        },
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    try:
        context = _wait_ready(port, process, settings.data_dir / "ca.pem")
        assert _get(port, context, "/orders/1001", token) == 200
        assert _get(port, context, "/orders", token) == 404
        # serve mounts the data-subject request API (docs/privacy.md).
        assert _get(port, context, "/v1/privacy/requests", desk) == 200
        assert _get(port, context, "/v1/privacy/requests", token) == 403

        manifest.write_text(text)
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while _get(port, context, "/orders", token) != 200:
            assert time.monotonic() < deadline, "reload did not take effect"
            time.sleep(0.2)

        slow: list[int] = []
        worker = threading.Thread(target=lambda: slow.append(_get(port, context, "/slow", token)))
        worker.start()
        time.sleep(
            1.0
        )  # the request is in flight (the upstream sleeps 3 s; read timeout 30 s here)
        process.send_signal(signal.SIGTERM)
        worker.join(timeout=20)
        assert slow == [200]
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)
        log_file.close()
    events = [
        json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")
    ]
    assert any(e.get("event") == "manifest reloaded" for e in events)
    assert any(e.get("event", "").startswith("shutting down") for e in events)
    assert token not in json.dumps(events)
