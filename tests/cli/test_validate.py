"""``interlock validate`` without a file: the manifest serve and keys use."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from interlock.cli.main import main
from tests.conftest import isolate_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_cli(monkeypatch, tmp_path)


def test_validate_without_a_file_checks_interlock_manifest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """INTERLOCK_MANIFEST names the file, as it does for serve and keys."""
    bad = tmp_path / "elsewhere.yaml"
    bad.write_text("version: 1\nsystems: {erp: {url: 'http://erp.internal'}}\n")
    monkeypatch.setenv("INTERLOCK_MANIFEST", str(bad))
    assert main(["validate"]) == 1
    assert f"{bad}:2:" in capsys.readouterr().out


def test_validate_without_a_file_or_variable_checks_interlock_yaml_here(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing named: ./interlock.yaml."""
    shutil.copy(EXAMPLE, tmp_path / "interlock.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")


def test_validate_without_a_file_names_the_missing_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ./interlock.yaml: one error line naming it, no traceback."""
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 1
    captured = capsys.readouterr()
    assert "interlock.yaml" in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err
