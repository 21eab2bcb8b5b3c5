"""``interlock privacy request``: the commands over a real deployment and audit log."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from interlock.cli.main import main
from tests.conftest import isolate_cli
from tests.privacy.request_support import MANIFEST

IDENTIFIER = "Ada.Lovelace@Example.com"


@pytest.fixture
def manifest_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """An initialised deployment of its own, and the manifest file."""
    isolate_cli(monkeypatch, tmp_path)
    assert main(["init"]) == 0
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST)
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``interlock privacy request ARGS``: (status, stdout, stderr)."""
    capsys.readouterr()
    status = main(["privacy", "request", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_an_erasure_from_stdin_to_receipt(
    manifest_path: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    m = ("-m", manifest_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(IDENTIFIER + "\n"))
    status, out, err = run(capsys, "erase", "-", "--kind", "email", "-s", "billing", "--json", *m)
    assert status == 0, err
    created = json.loads(out)
    request_id = created["id"]
    assert created["systems"][0]["status"] == "manual-pending"
    status, out, _ = run(capsys, "list", "--json", *m)
    assert [r["id"] for r in json.loads(out)["requests"]] == [request_id]
    assert run(capsys, "run", "--until-done", *m)[1].startswith("0 steps")
    status, _, err = run(
        capsys, "confirm", request_id, "billing", "--status", "done", "--note", "removed", *m
    )
    assert status == 0, err
    assert run(capsys, "run", *m)[1].startswith("1 step taken")
    status, out, _ = run(capsys, "show", request_id, "--json", *m)
    shown = json.loads(out)
    assert (shown["status"], shown["outcome"]) == ("closed", "completed")
    receipt = tmp_path / "receipt.json"
    status, _, err = run(capsys, "receipt", request_id, "--out", str(receipt), *m)
    assert status == 0, err
    document = json.loads(receipt.read_text())
    assert json.dumps(document).count(request_id) >= 1
    assert (receipt.stat().st_mode & 0o777) == 0o600
    # The identifier is in no file of the deployment (store, audit log) nor the receipt.
    for file in [*(tmp_path / "data").rglob("*"), receipt]:
        if file.is_file():
            data = file.read_bytes()
            assert IDENTIFIER.lower().encode() not in data, file
            assert IDENTIFIER.encode() not in data, file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("access", "ada@example.com", "--kind", "passport"), "declared: customer_id, email"),
        (("export", "ada@example.com"), "give --kind"),
        (("show", "dsr_nothing"), "no data-subject request"),
        (("rectify", "ada@example.com", "--kind", "email", "--set", "oops"), "name=value"),
        (("extend", "dsr_x", "--months", "1", "--reason", "r"), "no data-subject request"),
    ],
)
def test_refusals_are_one_line_with_exit_2(
    manifest_path: str, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    status, _, err = run(capsys, *args, "-m", manifest_path)
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "ada@example.com" not in err


def test_an_export_bundle_of_an_open_request_is_refused(
    manifest_path: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, _ = run(
        capsys, "export", "ada@example.com", "--kind", "email", "-s", "billing", "--json",
        "-m", manifest_path,
    )  # fmt: skip
    assert status == 0
    request_id = json.loads(out)["id"]
    status, _, err = run(
        capsys, "export", request_id, "--out", str(tmp_path / "b.json"), "-m", manifest_path
    )
    assert status == 2
    assert "not every system has answered" in err
    assert not (tmp_path / "b.json").exists()
