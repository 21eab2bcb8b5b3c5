"""``interlock pki issue ... --out DIR`` in a fresh directory creates DIR, private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from interlock.cli.main import main
from tests.conftest import isolate_cli


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_cli(monkeypatch, tmp_path)


def test_issue_creates_a_missing_out_directory_0700(tmp_path: Path) -> None:
    """README: `interlock pki issue ... --out certs/` works where certs/ does not exist yet."""
    assert main(["init"]) == 0
    out = tmp_path / "certs" / "servers"
    assert main(["pki", "issue", "server", "api.example.com", "--out", f"{out}/"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "api.example.com.key").stat().st_mode) == 0o600


def test_issue_into_a_file_is_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out naming a file is an error, not a place to write into."""
    assert main(["init"]) == 0
    target = tmp_path / "certs"
    target.write_text("not a directory")
    assert main(["pki", "issue", "server", "api.example.com", "--out", str(target)]) == 1
    assert "is not a directory" in capsys.readouterr().err
