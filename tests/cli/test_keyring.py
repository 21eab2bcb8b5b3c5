"""``interlock keyring``: what a re-wrap did with every value, and ``status --json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interlock.cli.keyring import rewrap_summary
from interlock.cli.main import main
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
