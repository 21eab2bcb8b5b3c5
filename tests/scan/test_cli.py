"""``interlock scan``: exit codes, formats, baseline writing; no deployment needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interlock.cli.evidence import admin_action
from interlock.cli.main import main
from interlock.scan import BASELINE_NAME
from tests.scan.helpers import rand


@pytest.fixture(autouse=True)
def _no_deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A data dir that does not exist: scan must not need `interlock init`.
    monkeypatch.setenv("INTERLOCK_DATA_DIR", str(tmp_path / "no-such-data-dir"))


def _tree(root: Path) -> str:
    value = rand(32)
    (root / "cfg.yaml").write_text(f"db:\n  api_key: {value}\n")
    return value


def test_clean_tree_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing found: exit 0 and a one-line summary."""
    (tmp_path / "ok.yaml").write_text("verify: true\n")
    assert main(["scan", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "1 files scanned: no findings"


def test_findings_exit_1_in_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finding: exit 1 with text, JSON and SARIF; the value is never printed."""
    value = _tree(tmp_path)
    for fmt in ("text", "json", "sarif"):
        assert main(["scan", str(tmp_path), "--format", fmt]) == 1
        out = capsys.readouterr().out
        assert value not in out
        if fmt != "text":
            json.loads(out)


def test_write_baseline_then_scan_is_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--write-baseline --reason accepts current findings; the next scan exits 0."""
    _tree(tmp_path)
    assert main(["scan", str(tmp_path), "--write-baseline", "--reason", "fixture"]) == 0
    assert json.loads((tmp_path / BASELINE_NAME).read_text())["entries"][0]["reason"] == "fixture"
    assert main(["scan", str(tmp_path)]) == 0
    assert "1 in the baseline" in capsys.readouterr().out


def test_write_baseline_without_reason_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every entry needs a reason: exit 2, nothing written."""
    _tree(tmp_path)
    assert main(["scan", str(tmp_path), "--write-baseline"]) == 2
    assert "--reason" in capsys.readouterr().err
    assert not (tmp_path / BASELINE_NAME).exists()


def test_bad_baseline_exits_2_with_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed baseline is a usage error naming the file, on one line."""
    (tmp_path / BASELINE_NAME).write_text("{oops")
    assert main(["scan", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("interlock: error[scan_input_invalid]:")
    assert BASELINE_NAME in err
    assert "\n" not in err


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    """A missing path or an unknown format: exit 2."""
    assert main(["scan", str(tmp_path / "missing")]) == 2
    assert main(["scan", str(tmp_path), "--format", "xml"]) == 2


def test_scan_is_not_an_admin_action() -> None:
    """Scanning changes nothing: it is not recorded and needs no audit trail."""
    assert admin_action(["scan", "."]) is None
    assert admin_action(["scan", "keys", "create"]) is None
