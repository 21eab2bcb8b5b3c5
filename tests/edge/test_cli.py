"""``interlock edge nginx`` writes a configuration nginx accepts; ``edge reload`` checks first."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from interlock.cli.main import main
from interlock.testing.gateway import MANIFEST
from tests.conftest import isolate_cli
from tests.edge.conftest import assert_nginx_accepts, nginx_or_skip


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
