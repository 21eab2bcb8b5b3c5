"""``interlock keyring``: what a re-wrap did with every value, and ``status --json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from interlock.cli.keyring import rewrap_summary
from interlock.cli.main import main
from interlock.crypto.kek_transport import KekExport, new_passphrase, seal_export
from interlock.store import RewrapReport
from tests.cli.test_json_output import check
from tests.conftest import isolate_cli


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_cli(monkeypatch, tmp_path)


def test_rewrap_after_rotate_says_the_rest_is_already_current(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """rotate re-wraps all 3 values; a second pass re-wraps none and says why."""
    assert main(["init"]) == 0
    assert main(["keyring", "rotate"]) == 0
    out = capsys.readouterr().out
    assert "re-wrapped 3 of 3 sealed values under KEK version 2\n" in out
    assert main(["keyring", "rewrap"]) == 0
    assert capsys.readouterr().out == (
        "re-wrapped 0 of 3 sealed values under KEK version 2; 3 already under version 2\n"
    )


def test_rewrap_summary_accounts_for_every_value() -> None:
    """Re-wrapped + already current + empty + lost to another writer = examined."""
    report = RewrapReport(examined=10, rewrapped=6, current=2, empty=1)
    assert report.contended == 1
    assert rewrap_summary(report, 3) == (
        "re-wrapped 6 of 10 sealed values under KEK version 3; 2 already under version 3; "
        "1 empty (nothing sealed); 1 changed by another writer meanwhile "
        "(run `interlock keyring rewrap` again)"
    )


def test_status_json_names_the_keyring_and_its_versions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One object: id, backend, versions and the current one; no key material."""
    assert main(["init"]) == 0
    assert main(["keyring", "rotate", "--no-rewrap"]) == 0
    capsys.readouterr()
    assert main(["keyring", "status", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    check("interlock keyring status", document)  # exactly the fields docs/cli.md lists
    assert document["backend"] == "file"
    assert document["versions"] == [1, 2]
    assert document["current_version"] == 2
    assert len(document["keyring_id"]) == 32


class _Stdin:
    """Standard input that is not a terminal."""

    def __init__(self, text: str) -> None:
        self._text = text

    def isatty(self) -> bool:
        return False

    def read(self, limit: int = -1) -> str:
        return self._text[:limit] if limit >= 0 else self._text


def _export(tmp_path: Path, version: int) -> tuple[Path, str]:
    """An export of a fresh key as ``version`` of this data directory's keyring."""
    keyring_id = json.loads((tmp_path / "data" / "keyring.json").read_text())["keyring_id"]
    passphrase = new_passphrase()
    export = KekExport(keyring_id, version, "2026-01-01T00:00:00+00:00", os.urandom(32))
    path = tmp_path / f"kek-v{version}.jwe"
    path.write_text(seal_export(export, passphrase))
    return path, passphrase


def test_import_version_refuses_a_version_past_uint32_and_leaves_the_keyring_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to write it, and keyring.json no longer loaded: the deployment was bricked."""
    assert main(["init"]) == 0
    keyring = tmp_path / "data" / "keyring.json"
    before = keyring.read_bytes()
    export, passphrase = _export(tmp_path, 2**32)
    monkeypatch.setattr("sys.stdin", _Stdin(passphrase + "\n"))
    capsys.readouterr()
    assert main(["keyring", "import-version", str(export)]) == 1
    assert "from 1 to 4294967295" in capsys.readouterr().err
    assert keyring.read_bytes() == before
    assert main(["keyring", "status"]) == 0


def test_import_version_says_when_it_makes_the_version_current_and_can_keep_the_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--keep-current adds a newer version for reading only; by default it becomes current."""
    assert main(["init"]) == 0
    export, passphrase = _export(tmp_path, 2)
    monkeypatch.setattr("sys.stdin", _Stdin(passphrase + "\n"))
    capsys.readouterr()
    assert main(["keyring", "import-version", str(export), "--keep-current"]) == 0
    assert capsys.readouterr().out == (
        "KEK version 2 imported; version 1 stays current (new data keys are wrapped under it)\n"
    )
    assert main(["keyring", "import-version", str(export)]) == 0
    assert capsys.readouterr().out == (
        "KEK version 2 was already held (the same key); it is now current "
        "(new data keys are wrapped under it)\n"
    )
    assert main(["keyring", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["current_version"] == 2
