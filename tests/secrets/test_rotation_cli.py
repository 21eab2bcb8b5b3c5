"""``interlock secrets rotate`` and ``interlock secrets overdue``: output and exit codes."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest

from interlock.cli.main import main
from tests.conftest import isolate_cli


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test gets its own data directory and no inherited INTERLOCK_* settings."""
    # A loaded machine may take longer than the default 2 s to confirm an audit entry.
    isolate_cli(monkeypatch, tmp_path, AUDIT_TIMEOUT_SECONDS="30")
    assert main(["init"]) == 0


def _put(monkeypatch: pytest.MonkeyPatch, name: str, value: bytes, kind: str) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(value))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["secrets", "put", name, "--kind", kind]) == 0


def test_overdue_lists_secrets_past_their_maximum_age_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing overdue: exit 0; a secret past max age: listed (text and JSON), exit 1."""
    _put(monkeypatch, "erp/api-key", b"value-1", "api_key")
    capsys.readouterr()
    assert main(["secrets", "overdue"]) == 0
    assert "nothing is overdue" in capsys.readouterr().out
    # A maximum age of one second, and a value created before that.
    assert main(["secrets", "configure", "erp/api-key", "--max-age", "1s"]) == 0

    time.sleep(1.2)
    capsys.readouterr()
    assert main(["secrets", "overdue"]) == 1
    out = capsys.readouterr().out
    assert "secret://erp/api-key" in out
    assert "value-1" not in out
    assert main(["secrets", "overdue", "--json"]) == 1
    listed = json.loads(capsys.readouterr().out)["secrets"]
    assert [(i["name"], i["kind"], i["max_age_seconds"]) for i in listed] == [
        ("erp/api-key", "api_key", 1)
    ]


def test_rotate_without_a_rotator_is_a_one_line_error_and_due_with_nothing_due_is_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deny by default: no rotator, no rotation; the schedule with nothing to do exits 0."""
    _put(monkeypatch, "erp/api-key", b"value-1", "api_key")
    capsys.readouterr()
    assert main(["secrets", "rotate", "erp/api-key"]) != 0
    captured = capsys.readouterr()
    assert "no rotator" in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err
    assert main(["secrets", "rotate", "--due"]) == 0
    assert "nothing is due" in capsys.readouterr().out
    assert main(["secrets", "rotate"]) != 0  # neither a name nor --due
