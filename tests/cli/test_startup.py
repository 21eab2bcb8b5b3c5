"""``interlock`` starts fast: sub-commands are imported when they run, not before.

The group's help and the completion of sub-command names come from a static
table (:data:`interlock.cli.main.COMMANDS`); these tests keep that table in
step with each module's real help, and check in a fresh interpreter that
``--help``, name completion and a simple command leave the heavy modules
(gateway, asyncssh, the checklist, the audit service, the store) unimported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer import _click as click

from interlock.cli.lazy import LazyGroup
from interlock.cli.main import COMMANDS, app

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "interlock.yaml"

#: Modules a command that needs none of them must not pay for (seconds between them).
HEAVY = (
    "asyncssh",
    "interlock.gateway",
    "interlock.check",
    "interlock.audit.service",
    "interlock.store",
    "sqlalchemy",
    "xmlschema",
)
#: What ``--help`` and completing a sub-command's name do not need either.
NOT_FOR_HELP = (*HEAVY, "interlock.config.settings", "interlock.cli.context", "structlog")


def _group() -> LazyGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    return group


def _help(group: LazyGroup) -> str:
    context = click.Context(group, info_name="interlock")
    return group.get_help(context)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_table_gives_each_command_its_real_one_line_help(name: str) -> None:
    """At every width ``--help`` may use, the table's line is what the module's command says."""
    entry = COMMANDS[name]
    real = entry.load(name, None)
    stand_in = entry.stub(name)
    assert not real.hidden
    assert not real.deprecated
    for limit in (20, 30, 45, 60, 74, 100, 200):
        assert stand_in.get_short_help_str(limit) == real.get_short_help_str(limit), limit


def test_every_sub_command_is_in_the_table() -> None:
    """A command added with ``app.command``/``app.add_typer`` would be imported eagerly:
    add it to ``COMMANDS`` in interlock/cli/main.py instead."""
    assert app.registered_commands == []
    assert app.registered_groups == []


def test_help_from_the_table_is_the_help_with_every_command_loaded() -> None:
    """``interlock --help`` printed lazily equals the one printed after loading everything."""
    lazy = _group()
    listed = _help(lazy)
    assert not any(lazy.lazy.is_loaded(name) for name in COMMANDS)
    loaded = _group()
    assert len(list(loaded.commands.values())) == len(COMMANDS)  # looking each up loads it
    assert all(loaded.lazy.is_loaded(name) for name in COMMANDS)
    assert _help(loaded) == listed
    for name in COMMANDS:
        assert f"\n  {name} " in listed


def test_the_group_still_holds_every_command_and_resolves_each() -> None:
    """Code that walks ``commands`` (the JSON documentation test does) sees the whole tree."""
    group = _group()
    assert list(group.commands) == list(COMMANDS)
    clients = group.commands["clients"]
    assert isinstance(clients, typer.core.TyperGroup)
    assert "create" in clients.commands
    assert group.get_command(click.Context(group), "no-such-command") is None
    with pytest.raises(KeyError):
        group.commands["no-such-command"]


def _fresh(code: str, *, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``code`` in a new interpreter; it prints a JSON document last, which is returned."""
    done = subprocess.run(  # noqa: S603  (our interpreter, fixed code)
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def _loaded(prefixes: tuple[str, ...]) -> str:
    """Code printing which modules under ``prefixes`` are imported (and the exit status)."""
    return (
        "import json, sys\n"
        f"prefixes = {prefixes!r}\n"
        "found = sorted({m for m in sys.modules for p in prefixes "
        "if m == p or m.startswith(p + '.')})\n"
        "print(json.dumps({'loaded': found, 'status': status}))\n"
    )


@pytest.mark.processes
def test_importing_the_cli_imports_no_sub_command() -> None:
    """``import interlock.cli.main`` loads no command module and none of their dependencies."""
    code = "import interlock.cli.main\nstatus = 0\n" + _loaded(
        (*NOT_FOR_HELP, "interlock.cli.audit", "interlock.cli.files", "interlock.cli.validate")
    )
    assert _fresh(code)["loaded"] == []


@pytest.mark.processes
def test_help_and_version_import_no_sub_command(tmp_path: Path) -> None:
    """``interlock --help`` lists every command without importing any of them."""
    for argv in (["--help"], ["--version"], ["version"], []):
        code = (
            "import contextlib, io\n"
            "from interlock.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    status = main({argv!r})\n" + _loaded(NOT_FOR_HELP[:-3])
        )
        result = _fresh(code, env={"INTERLOCK_DATA_DIR": str(tmp_path)})
        assert result["loaded"] == [], argv
        assert result["status"] == (2 if argv == [] else 0), argv


@pytest.mark.processes
def test_completing_a_sub_command_name_imports_no_sub_command() -> None:
    """TAB after ``interlock cl`` offers ``clients`` from the table alone."""
    code = (
        "import contextlib, io\n"
        "from interlock.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    status = main([])\n"
        "print(json.dumps(out.getvalue().split()))\n" + _loaded(NOT_FOR_HELP)
    ).replace("import contextlib, io\n", "import contextlib, io, json\n")
    done = subprocess.run(  # noqa: S603  (our interpreter, fixed code)
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "_INTERLOCK_COMPLETE": "complete_bash",
            "COMP_WORDS": "interlock s",
            "COMP_CWORD": "1",
        },
        timeout=60,
    )
    offered, result = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    assert offered == ["serve", "scan", "secrets", "signature-keys"]
    assert result["loaded"] == []


@pytest.mark.processes
def test_a_command_imports_its_module_only(tmp_path: Path) -> None:
    """``interlock validate FILE`` runs without the gateway, asyncssh, the store or the audit log."""
    code = (
        "import contextlib, io\n"
        "from interlock.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    status = main(['validate', {str(EXAMPLE)!r}])\n"
        + _loaded(("asyncssh", "interlock.gateway.server", "interlock.check", "interlock.store"))
    )
    result = _fresh(code, env={"INTERLOCK_DATA_DIR": str(tmp_path)})
    assert result == {"loaded": [], "status": 0}
