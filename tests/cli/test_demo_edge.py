"""``interlock demo --edge``: the walkthrough through real nginx, a line per request, clean end.

nginx comes from Debian (``make nginx``); without it these tests skip (fail
under ``INTERLOCK_REQUIRE_SERVICES=1``), as the edge tests do.
"""

from __future__ import annotations

import re
import signal
import ssl
from pathlib import Path

import httpx
import pytest

from tests.cli.test_demo_serving import _CURL, _START_SECONDS, _STOP_SECONDS, _Demo
from tests.gateway.edge.conftest import nginx_or_skip

pytestmark = pytest.mark.processes

_NGINX = r"edge mode       nginx (?P<base>https://127\.0\.0\.1:\d+) \(pid (?P<pid>\d+), one worker"
_DECIDED = "nginx answered after Interlock's decision"
_PASSED = "nginx passed it to Interlock's pipeline: "


def _gone(pid: int) -> bool:
    """No process ``pid``, and no process whose parent it is (nginx's worker)."""
    if Path(f"/proc/{pid}").exists():
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        if int(fields[1]) == pid:
            return False
    return True


def test_the_walkthrough_runs_through_nginx_and_says_who_answered(tmp_path: Path) -> None:
    """Every call of the walkthrough goes through nginx; each says what carried it."""
    nginx_or_skip()
    demo = _Demo(tmp_path, "--edge", "--once")
    try:
        front = demo.until(_NGINX, _START_SECONDS)
        data_dir = Path(demo.until(r"deleted the demo's data directory (\S+):", _START_SECONDS)[1])
        status = demo.process.wait(timeout=_STOP_SECONDS)
        demo.reader.join(timeout=_STOP_SECONDS)
        while not demo.lines.empty():
            demo.out.append(demo.lines.get())
    finally:
        demo.close()
    out = "\n".join(demo.out)
    assert status == 0, out
    walk = out.split("allowed read", 1)[1]
    expected = [
        ("GET /orders/1001  (Bearer", "200", _PASSED),
        ("POST /crm/accounts/ACME/orders", "403 this route requires the scope", _PASSED),
        ("GET /orders/1001  (no credential)", "401", _PASSED),
        ("GET /invoices/7", "404 no route matches this path", _DECIDED),
        ("GET /orders/1001?api_key=ilk_x", "400 credentials are not accepted", _PASSED),
        ("GET /orders/1002", "200", _PASSED),  # the old key in its overlap
        ("GET /orders/1003", "200", _PASSED),  # the new key
        ("GET /orders/1002", "401 the API key is missing, invalid, expired or revoked", _PASSED),
    ]
    lines = walk.splitlines()
    at = 0
    for request, answer, carried in expected:
        at = next(i for i in range(at, len(lines)) if lines[i].strip().startswith(request))
        assert lines[at + 1].strip().startswith(answer), lines[at : at + 3]
        note = next(i for i in range(at + 2, len(lines)) if lines[i].startswith("  nginx "))
        assert lines[note].strip().startswith(carried), lines[at : note + 1]
        at = note + 1
    assert "receipt  verified offline" in out  # the privacy walkthrough, through nginx too
    assert f"curl --cacert {data_dir}/ca.pem" in out
    assert f"{front['base']}/orders/1001" in out
    assert not data_dir.exists()
    assert _gone(int(front["pid"]))


def test_a_serving_run_answers_through_nginx_prints_lines_and_stops_nginx(tmp_path: Path) -> None:
    """curl-like calls through nginx (1001 is erased by then): one decided, one passed; Ctrl-C."""
    nginx_or_skip()
    demo = _Demo(tmp_path, "--edge")
    try:
        front = demo.until(_NGINX, _START_SECONDS)
        curl = demo.until(_CURL.pattern, _START_SECONDS)
        assert curl["base"] == front["base"]  # the curl lines go to nginx
        data_dir = Path(curl["ca"]).parent
        key = Path(curl["key"]).read_text().strip()
        trust = ssl.create_default_context(cafile=curl["ca"])
        with httpx.Client(base_url=curl["base"], verify=trust, timeout=30) as http:
            unknown = http.get("/invoices/7", headers={"Authorization": f"Bearer {key}"})
            allowed = http.get("/orders/1003", headers={"Authorization": f"Bearer {key}"})
        assert unknown.status_code == 404
        assert unknown.headers["content-type"].startswith("application/problem+json")
        unknown_id = unknown.headers["X-Request-Id"]
        assert unknown.json()["correlation_id"] == unknown_id
        assert allowed.status_code == 200
        allowed_id = allowed.headers["X-Request-Id"]
        demo.until(
            rf"^\d\d:\d\d:\d\dZ  -  GET /invoices/7  404  {unknown_id}  "
            + re.escape(f"({_DECIDED})")
            + "$",
            30,
        )
        demo.until(
            rf"^\d\d:\d\d:\d\dZ  order-sync  GET /orders/1003  200  {allowed_id}  "
            + re.escape(f"({_PASSED}")
            + ".*\\)$",
            30,
        )
        status = demo.stop(signal.SIGINT)
    finally:
        demo.close()
    out = "\n".join(demo.out)
    assert status == 0, out
    assert "SIGINT: stopping the demo" in out
    assert key not in out
    assert f"deleted the demo's data directory {data_dir}" in out
    assert not data_dir.exists()
    assert _gone(int(front["pid"]))
