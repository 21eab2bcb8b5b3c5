"""Which files are read: .gitignore respected, environments, caches, binaries and big files skipped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from interlock.scan import Baseline, scan
from interlock.scan.files import iter_files
from interlock.testing.services import require_env
from tests.scan.helpers import rand


def _secret_line() -> str:
    return f"api_key: {rand(32)}\n"


def test_virtualenvs_caches_and_vcs_directories_are_skipped(tmp_path: Path) -> None:
    """.venv*, any directory holding pyvenv.cfg, node_modules, __pycache__ and .git are not read."""
    for directory in (".venv", ".venv-tools", "env", "node_modules", "__pycache__", ".git", "dist"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "leak.yaml").write_text(_secret_line())
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "app.yaml").write_text(_secret_line())
    assert [f.path for f in scan(tmp_path, Baseline()).findings] == ["app.yaml"]


def test_binaries_and_files_over_the_cap_are_skipped(tmp_path: Path) -> None:
    """A file with NUL bytes, or larger than max_bytes, is not read."""
    (tmp_path / "blob.bin").write_bytes(b"\0\1" + _secret_line().encode())
    (tmp_path / "big.yaml").write_text(_secret_line() + "#" * 5000)
    report = scan(tmp_path, Baseline(), max_bytes=1000)
    assert report.findings == ()
    assert report.files_scanned == 0


@pytest.mark.skipif(
    shutil.which("git") is None and not require_env(),  # CI has git: there it fails instead
    reason="git is not installed",
)
def test_gitignore_is_respected_inside_a_work_tree(tmp_path: Path) -> None:
    """Ignored files are not read; untracked files that are not ignored are."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # noqa: S603, S607
    (tmp_path / ".gitignore").write_text("secrets.local.yaml\n")
    (tmp_path / "secrets.local.yaml").write_text(_secret_line())
    (tmp_path / "app.yaml").write_text(_secret_line())
    names = {p.name for p in iter_files(tmp_path)}
    assert "app.yaml" in names
    assert "secrets.local.yaml" not in names


def test_a_single_file_can_be_scanned(tmp_path: Path) -> None:
    """PATH may be one file; its finding's path is its name."""
    (tmp_path / "one.yaml").write_text(_secret_line())
    (finding,) = scan(tmp_path / "one.yaml", Baseline()).findings
    assert finding.path == "one.yaml"
