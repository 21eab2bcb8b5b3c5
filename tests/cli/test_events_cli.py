"""`interlock events schemas`: register, check, list, diff and mode on a real deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interlock.cli.main import main
from tests.cli.test_evidence import _entries
from tests.conftest import isolate_cli
from tests.events.test_registry import MANIFEST


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test gets its own data directory and no inherited INTERLOCK_* settings."""
    isolate_cli(monkeypatch, tmp_path)


@pytest.fixture
def manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """An initialised deployment and the issue's event-streaming manifest."""
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST)
    assert main(["init"]) == 0
    capsys.readouterr()
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _file(tmp_path: Path, name: str, **properties: Any) -> str:
    """A closed order schema with ``properties`` (id: string required) in a file."""
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string"}, **properties},
        "required": ["id"],
        "additionalProperties": False,
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(schema))
    return str(path)


def test_register_prints_version_and_id_and_is_audited(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two versions; the same file again is the same version; each is on the audit trail."""
    m = ("--manifest", str(manifest))
    v1, v2 = _file(tmp_path, "v1"), _file(tmp_path, "v2", total={"type": "number"})
    status, out, err = _run(capsys, "events", "schemas", "register", "order.created", v1, *m)
    assert status == 0, err
    assert out.startswith("order.created version 1 id ")
    assert _run(capsys, "events", "schemas", "register", "order.created", v2, *m)[1].startswith(
        "order.created version 2 id "
    )
    assert _run(capsys, "events", "schemas", "register", "order.created", v2, *m)[1].startswith(
        "order.created version 2 id "
    )
    registered = [e for e in _entries() if e["action"] == "events.schema.register"]
    assert len(registered) == 3
    assert registered[0]["actor"].startswith("admin:")


def test_an_incompatible_schema_exits_1_with_every_problem_pointer_first(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A type narrowed and a required property added: both listed, then the error line."""
    m = ("--manifest", str(manifest))
    _run(capsys, "events", "schemas", "register", "order.created", _file(tmp_path, "v1"), *m)
    breaking = tmp_path / "breaking.json"
    breaking.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "sku": {"type": "string"}},
                "required": ["id", "sku"],
                "additionalProperties": False,
            }
        )
    )
    status, _, err = _run(
        capsys, "events", "schemas", "register", "order.created", str(breaking), *m
    )
    assert status == 1
    lines = err.strip().splitlines()
    assert lines[0] == "incompatible with version 1 (BACKWARD):", err
    assert len(lines) >= 4, err  # the heading, at least two problems, the error line
    assert all(line.startswith("  /") for line in lines[1:-1]), err
    assert any(line.startswith("  /properties/id") for line in lines), err
    assert "error[incompatible_schema]" in lines[-1]
    # check says the same, storing nothing; against nothing else it is compatible.
    status, out, _ = _run(capsys, "events", "schemas", "check", "order.created", str(breaking), *m)
    assert status == 1
    assert out.startswith("/")
    ok = _file(tmp_path, "ok", note={"type": "string"})
    assert _run(capsys, "events", "schemas", "check", "order.created", ok, *m)[1] == (
        "compatible (BACKWARD)\n"
    )


def test_list_diff_and_mode(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """list shows every declared subject; diff both directions; mode shows and sets."""
    m = ("--manifest", str(manifest))
    run = ("events", "schemas")
    _run(capsys, *run, "mode", "order.created", "none", *m)
    _run(capsys, *run, "register", "order.created", _file(tmp_path, "v1"), *m)
    _run(capsys, *run, "register", "order.created", _file(tmp_path, "v2", n={"type": "number"}), *m)
    status, out, err = _run(capsys, *run, "list", "--json", *m)
    assert status == 0, err
    listed = {row["subject"]: row for row in json.loads(out)["subjects"]}
    assert listed["order.created"]["versions"] == [1, 2]
    assert listed["order.created"]["mode"] == "NONE"
    assert listed["order.cancelled"] == {
        "subject": "order.cancelled",
        "mode": "FULL",
        "versions": [],
        "latest_id": None,
    }
    versions = json.loads(_run(capsys, *run, "list", "order.created", "--json", *m)[1])["versions"]
    assert [row["version"] for row in versions] == [1, 2]
    status, out, _ = _run(capsys, *run, "diff", "order.created", "1", "2", *m)
    assert status == 0
    backward, forward = out.split("v1 reading data of v2")
    assert "compatible" in backward.splitlines()[0]  # v2 (closed, n optional) reads v1 data
    assert "/properties/n" in forward  # v1 is closed: v2's n is not allowed there
    assert _run(capsys, *run, "mode", "order.created", *m)[1] == "NONE\n"
    status, _, err = _run(capsys, *run, "mode", "order.created", "SIDEWAYS", *m)
    assert status == 1
    assert "error[invalid_mode]" in err
    status, _, err = _run(capsys, *run, "register", "invoice.paid", _file(tmp_path, "x"), *m)
    assert status == 1
    assert "error[subject_not_found]" in err


@pytest.mark.parametrize("version", ["²", "٣", "0", "-1", "x", "01"])
def test_a_bad_version_is_one_invalid_version_line(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    """Not ``latest`` or a plain positive decimal: exit 1 with one error line.

    ``²`` passed ``str.isdigit`` and then failed ``int()``: an internal error (exit 70).
    """
    m = ("--manifest", str(manifest))
    _run(capsys, "events", "schemas", "register", "order.created", _file(tmp_path, "v1"), *m)
    status, out, err = _run(
        capsys, "events", "schemas", "check", "order.created", _file(tmp_path, "v1"),
        "--version", version, *m,
    )  # fmt: skip
    assert status == 1
    assert out == ""
    assert err.strip().splitlines() == [
        "interlock: error[invalid_version]: a version is a positive integer or 'latest'"
    ]
