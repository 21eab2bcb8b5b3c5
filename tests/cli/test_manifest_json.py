"""`interlock manifest status|history|show --json`: the fields docs/cli.md lists."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from interlock.cli.main import main
from tests.cli.test_clients import MANIFEST
from tests.conftest import isolate_cli


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test gets its own data directory and no inherited INTERLOCK_* settings."""
    isolate_cli(monkeypatch, tmp_path)


@pytest.fixture
def applied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """An initialised deployment with two versions of a manifest applied."""
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST)
    assert main(["init"]) == 0
    assert main(["manifest", "apply", str(path)]) == 0
    path.write_text(MANIFEST + "# version 2\n")
    assert main(["manifest", "apply", str(path)]) == 0
    capsys.readouterr()
    return path


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    status = main(list(args))
    return status, json.loads(capsys.readouterr().out)


def _is_utc(text: str) -> bool:
    return text.endswith("Z") and datetime.fromisoformat(text).utcoffset() is not None


def test_status_json_is_the_current_version(
    applied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, doc = _json(capsys, "manifest", "status", "--json")
    assert status == 0
    assert set(doc) == {"version", "sha256", "applied_at", "applied_by"}
    assert doc["version"] == 2
    assert doc["sha256"] == hashlib.sha256(applied.read_bytes()).hexdigest()
    assert _is_utc(doc["applied_at"])
    assert doc["applied_by"].startswith("admin:")


def test_status_json_without_a_version_is_nulls_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init"]) == 0
    capsys.readouterr()
    status, doc = _json(capsys, "manifest", "status", "--json")
    assert status == 1
    assert doc == {"version": None, "sha256": None, "applied_at": None, "applied_by": None}


def test_history_json_lists_versions_newest_first(
    applied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, doc = _json(capsys, "manifest", "history", "--json")
    assert status == 0
    assert list(doc) == ["versions"]
    assert [v["version"] for v in doc["versions"]] == [2, 1]
    assert doc["versions"][1]["sha256"] == hashlib.sha256(MANIFEST.encode()).hexdigest()
    assert all(_is_utc(v["applied_at"]) for v in doc["versions"])
    status, doc = _json(capsys, "manifest", "history", "--limit", "1", "--json")
    assert [v["version"] for v in doc["versions"]] == [2]


def test_show_json_carries_the_text_exactly_as_applied(
    applied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, doc = _json(capsys, "manifest", "show", "1", "--json")
    assert status == 0
    assert doc["version"] == 1
    assert doc["text"] == MANIFEST
    assert doc["sha256"] == hashlib.sha256(MANIFEST.encode()).hexdigest()
    assert set(doc) == {"version", "sha256", "applied_at", "applied_by", "text"}
