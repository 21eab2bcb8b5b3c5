"""``interlock edge nginx`` writes a configuration nginx accepts; ``edge reload`` checks first."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interlock.cli.main import main
from interlock.testing.gateway import MANIFEST
from tests.conftest import isolate_cli
from tests.gateway.edge.conftest import (
    assert_nginx_accepts,
    free_port,
    nginx_or_skip,
    start_nginx,
    stop_nginx,
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Its own data directory and manifest, no inherited INTERLOCK_* settings."""
    manifest = tmp_path / "interlock.yaml"
    manifest.write_text(MANIFEST.format(erp_port=9443, rogue_port=9444))
    isolate_cli(monkeypatch, tmp_path, MANIFEST=str(manifest))


@pytest.mark.processes
def test_edge_nginx_writes_a_configuration_nginx_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """nginx.conf, the CA, a listener certificate (key 0600) and edge.json; nginx -t passes."""
    binary = nginx_or_skip()
    assert main(["init"]) == 0
    out = tmp_path / "out"
    user = ["--user", "root"] if os.geteuid() == 0 else []
    assert main(["edge", "nginx", "-o", str(out), "--listen", "127.0.0.1:19443", *user]) == 0
    assert "nginx configuration written" in capsys.readouterr().out
    assert stat.S_IMODE((out / "server.key").stat().st_mode) == 0o600
    saved = json.loads((out / "edge.json").read_text())
    assert saved["listen"] == "127.0.0.1:19443"
    text = (out / "nginx.conf").read_text()
    assert "erp-outbound" not in text
    assert "secret://" not in text
    assert_nginx_accepts(binary, out, out / "nginx.conf")


def test_edge_reload_without_a_generated_directory_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No edge.json: one line saying what to run first, exit 1."""
    assert main(["edge", "reload", "-o", str(tmp_path / "nowhere")]) == 1
    assert "run interlock edge nginx" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("saved", "expected"),
    [
        ("[1, 2]", "not the options edge nginx writes"),
        ('{"listen": "127.0.0.1:443"}', "no 'interlock_ca'"),
        ('{"interlock_ca": 7}', "wrong type"),
    ],
)
def test_edge_reload_of_a_damaged_edge_json_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], saved: str, expected: str
) -> None:
    """A hand-edited or truncated edge.json: exit 1 and what is wrong, never a traceback."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "edge.json").write_text(saved)
    assert main(["edge", "reload", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert expected in err
    assert str(out / "edge.json") in err
    assert "Traceback" not in err


@pytest.mark.processes
def test_edge_reload_refuses_a_decision_worker_count_out_of_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """decision_workers 0 in edge.json: refused before anything is regenerated."""
    nginx_or_skip()
    assert main(["init"]) == 0
    out = tmp_path / "out"
    user = ["--user", "root"] if os.geteuid() == 0 else []
    assert main(["edge", "nginx", "-o", str(out), "--listen", "127.0.0.1:19443", *user]) == 0
    saved = json.loads((out / "edge.json").read_text())
    (out / "edge.json").write_text(json.dumps({**saved, "decision_workers": 0}))
    before = (out / "nginx.conf").read_text()
    capsys.readouterr()
    assert main(["edge", "reload", "-o", str(out)]) == 1
    assert "decision_workers must be a whole number from 1 to 64, got 0" in capsys.readouterr().err
    assert (out / "nginx.conf").read_text() == before


# A stand-in for `edge serve`: listens on the decision socket, notes each SIGHUP.
_DECISION_PROCESS = """
import pathlib, signal, socket, sys
path, marker = sys.argv[1], pathlib.Path(sys.argv[2])
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(8)
signal.signal(signal.SIGHUP, lambda *_: marker.write_text("reloaded"))
print("ready", flush=True)
while True:
    signal.pause()
"""


def _generated(tmp_path: Path) -> tuple[str, Path, int]:
    binary = nginx_or_skip()
    assert main(["init"]) == 0
    out = tmp_path / "out"
    port = free_port()
    user = ["--user", "root"] if os.geteuid() == 0 else []
    assert main(["edge", "nginx", "-o", str(out), "--listen", f"127.0.0.1:{port}", *user]) == 0
    return binary, out, port


@pytest.mark.processes
def test_edge_reload_tells_the_decision_process_to_reload_its_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After nginx -t, the process listening on the decision socket gets SIGHUP, then nginx.

    Before, only nginx reloaded: the decision kept the old manifest, so a
    removed route still worked and a moved one went to the wrong system.
    """
    binary, out, port = _generated(tmp_path)
    path = Path(json.loads((out / "edge.json").read_text())["decision_socket"])
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "reloaded"
    decision = subprocess.Popen(  # noqa: S603  (our own script, fixed arguments)
        [sys.executable, "-c", _DECISION_PROCESS, str(path), str(marker)],
        stdout=subprocess.PIPE,
        text=True,
    )
    nginx = start_nginx(binary, out / "nginx.conf", port)
    try:
        assert decision.stdout is not None
        assert decision.stdout.readline().strip() == "ready"
        capsys.readouterr()
        assert main(["edge", "reload", "-o", str(out)]) == 0
        assert "1 decision process(es) told to reload" in capsys.readouterr().out
        deadline = time.monotonic() + 5
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.read_text() == "reloaded"
    finally:
        stop_nginx(nginx)
        decision.terminate()
        decision.wait(timeout=10)
        if decision.stdout is not None:
            decision.stdout.close()


@pytest.mark.processes
def test_edge_reload_says_which_decision_process_it_could_not_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No process on the decision socket: nginx reloads, exit 1 naming the socket and SIGHUP."""
    binary, out, port = _generated(tmp_path)
    nginx = start_nginx(binary, out / "nginx.conf", port)
    try:
        capsys.readouterr()
        assert main(["edge", "reload", "-o", str(out)]) == 1
        captured = capsys.readouterr()
    finally:
        stop_nginx(nginx)
    assert "nginx configuration checked and reloaded" in captured.out
    assert "authz.sock" in captured.err
    assert "SIGHUP" in captured.err
