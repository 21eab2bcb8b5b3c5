"""``interlock demo`` while it serves: a line per request, and what it deletes or keeps.

The serving tests start the demo as a process (as ``make demo`` does), call it
with its API key, and stop it with SIGINT or SIGTERM.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx
import pytest

from interlock.cli.demo_serving import contents, line
from interlock.gateway.observer import RequestSeen

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "interlock.yaml"
#: Seconds the demo may take to reach "Try it" on a loaded machine, and to stop.
_START_SECONDS = 240.0
_STOP_SECONDS = 60.0
_CURL = re.compile(
    r'curl --cacert (?P<ca>\S+) -H "Authorization: Bearer \$\(cat (?P<key>\S+)\)" '
    r"(?P<base>https://127\.0\.0\.1:\d+)/orders/1001"
)


def test_a_request_line_has_time_client_method_path_status_and_correlation_id() -> None:
    """One line; no query string (there is none to print); control characters escaped."""
    seen = RequestSeen(
        method="GET",
        path="/orders/\x1b[31m1",
        route="unmatched",
        status=404,
        outcome="refused",
        client=None,
        correlation_id="0" * 32,
    )
    shown = line(seen, datetime(2026, 12, 5, 14, 3, 7, tzinfo=UTC)).plain
    assert shown == f"14:03:07Z  -  GET /orders/\\x1b[31m1  404  {'0' * 32}"


def test_contents_names_what_the_data_directory_holds(tmp_path: Path) -> None:
    """Known files by what they are (SQLite's side files with theirs), the rest by name."""
    for name in ("keyring.json", "interlock.db", "interlock.db-wal", "audit.db", "receipt.json"):
        (tmp_path / name).write_text("x")
    assert contents(tmp_path) == (
        "keyring, store (API keys, secrets, the local CA's key), audit log, "
        "the walkthrough's files (receipt.json)"
    )


class _Demo:
    """``interlock demo --port 0`` as a process; its standard output read line by line."""

    def __init__(self, tmp_path: Path, *extra: str) -> None:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("INTERLOCK_") or name.startswith("INTERLOCK_TEST_")
        }
        # A fresh data directory under the test's own temporary directory.
        env |= {"TMPDIR": str(tmp_path), "INTERLOCK_LOG_FORMAT": "json", "NO_COLOR": "1"}
        self.errors = (tmp_path / "stderr.log").open("w")
        self.process = subprocess.Popen(  # noqa: S603  (our own CLI, fixed arguments)
            [sys.executable, "-m", "interlock", "demo", str(EXAMPLE), "--port", "0", *extra],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        stdout = self.process.stdout
        if stdout is None:
            raise RuntimeError("no standard output")
        self.reader = threading.Thread(target=self._read, args=(stdout,), daemon=True)
        self.reader.start()

    def _read(self, stdout: IO[str]) -> None:
        for text in stdout:
            self.lines.put(text.rstrip("\n"))

    def until(self, pattern: str, seconds: float) -> re.Match[str]:
        """Read lines until one matches ``pattern``; fail after ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                text = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.out.append(text)
            found = re.search(pattern, text)
            if found is not None:
                return found
        pytest.fail(f"no line matching {pattern!r} in:\n" + "\n".join(self.out[-40:]))

    def stop(self, signum: signal.Signals) -> int:
        """Send ``signum``; the exit status, once the rest of the output is read."""
        self.process.send_signal(signum)
        status = self.process.wait(timeout=_STOP_SECONDS)
        self.reader.join(timeout=_STOP_SECONDS)  # to the end of its output
        while not self.lines.empty():
            self.out.append(self.lines.get())
        return status

    def close(self) -> None:
        """Kill the process if it still runs; close its pipe and log."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=_STOP_SECONDS)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.errors.close()


@pytest.mark.processes
@pytest.mark.parametrize(
    ("keep", "signum"), [(False, signal.SIGINT), (True, signal.SIGTERM)], ids=["ctrl-c", "keep"]
)
def test_the_serving_demo_prints_each_request_and_says_what_it_deleted(
    tmp_path: Path, keep: bool, signum: signal.Signals
) -> None:
    """A refused call's correlation id is on screen; the key in a URL is not; the end is told."""
    demo = _Demo(tmp_path, *(["--keep"] if keep else []))
    try:
        curl = demo.until(_CURL.pattern, _START_SECONDS)
        data_dir = Path(curl["ca"]).parent
        assert data_dir.parent == tmp_path
        key = Path(curl["key"]).read_text().strip()
        trust = ssl.create_default_context(cafile=curl["ca"])
        with httpx.Client(base_url=curl["base"], verify=trust, timeout=30) as http:
            refused = http.post(
                "/crm/accounts/ACME/orders",
                headers={"Authorization": f"Bearer {key}"},
                json={"order": "1001"},
            )
            in_url = http.get("/orders/1001", params={"api_key": key})
        assert refused.status_code == 403
        refused_id = refused.headers["X-Request-Id"]
        assert refused.json()["correlation_id"] == refused_id
        assert in_url.status_code == 400
        in_url_id = in_url.headers["X-Request-Id"]
        demo.until(
            rf"^\d\d:\d\d:\d\dZ  order-sync  POST /crm/accounts/ACME/orders  403  {refused_id}$",
            30,
        )
        demo.until(rf"^\d\d:\d\d:\d\dZ  -  GET /orders/1001  400  {in_url_id}$", 30)
        status = demo.stop(signum)
    finally:
        demo.close()
    out = "\n".join(demo.out)
    assert status == 0
    assert f"{signum.name}: stopping the demo" in out
    assert key not in out
    held = "keyring, store (API keys, secrets, the local CA's key), audit log, CA certificate"
    if keep:
        assert f"kept the demo's data directory {data_dir}: {held}" in out
        assert f"INTERLOCK_DATA_DIR={data_dir} interlock audit verify" in out
        assert (data_dir / "keyring.json").is_file()
    else:
        assert f"deleted the demo's data directory {data_dir}: {held}" in out
        assert not data_dir.exists()
