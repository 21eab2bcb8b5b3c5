"""``interlock secrets``: what ``put`` reads from standard input, what ``undelete`` reports."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from interlock.cli.main import main
from interlock.secrets.vault import MAX_SECRET_BYTES
from tests.conftest import isolate_cli


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test gets its own initialised data directory."""
    isolate_cli(monkeypatch, tmp_path, AUDIT_TIMEOUT_SECONDS="30")
    assert main(["init"]) == 0


def _stdin(monkeypatch: pytest.MonkeyPatch, value: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(value)))


def _versions(capsys: pytest.CaptureFixture[str], name: str) -> str:
    capsys.readouterr()
    status = main(["secrets", "show", name])
    return capsys.readouterr().out if status == 0 else ""


@pytest.mark.parametrize(
    "tail",
    [
        b"\n" + b"B" * 10,  # the 65,537th byte a newline: read() cut the rest off there
        b"\r\n" + b"B" * 10,
        b"\n\n",
        b"B\n",
    ],
)
def test_put_refuses_an_oversize_value_wherever_its_line_breaks_fall(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tail: bytes
) -> None:
    """More than the maximum plus one final line break is refused whole; nothing is stored."""
    _stdin(monkeypatch, b"A" * MAX_SECRET_BYTES + tail)
    assert main(["secrets", "put", "demo/big"]) == 1
    assert f"a secret is at most {MAX_SECRET_BYTES} bytes" in capsys.readouterr().err
    assert "version 1" not in _versions(capsys, "demo/big")


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n"])
def test_put_takes_the_largest_value_with_or_without_a_final_line_break(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ending: bytes
) -> None:
    """What `echo` adds is not part of the value; the value itself may be the maximum."""
    _stdin(monkeypatch, b"A" * MAX_SECRET_BYTES + ending)
    assert main(["secrets", "put", "demo/big"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO()))
    assert main(["secrets", "get", "demo/big", "--reveal"]) == 0
    written = sys.stdout.buffer
    assert isinstance(written, io.BytesIO)
    assert written.getvalue() == b"A" * MAX_SECRET_BYTES


def test_undelete_of_a_destroyed_version_fails_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A destroyed value cannot come back: exit 1, no "restored" line."""
    for value in (b"one", b"two"):
        _stdin(monkeypatch, value)
        assert main(["secrets", "put", "erp/k"]) == 0
    assert main(["secrets", "destroy", "erp/k", "-v", "1", "--yes"]) == 0
    capsys.readouterr()
    assert main(["secrets", "undelete", "erp/k", "-v", "1"]) == 1
    captured = capsys.readouterr()
    assert "restored" not in captured.out
    assert "version 1 of erp/k was destroyed" in captured.err
    assert main(["secrets", "undelete", "erp/k", "-v", "2"]) == 0
    assert (
        capsys.readouterr().out == "version 2 of secret://erp/k was not deleted; nothing changed\n"
    )
