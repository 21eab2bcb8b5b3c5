"""Shell completion (scripts, installation, sub-commands, names from the manifest) and --version.

The completions are asked for as a shell asks: through Typer's protocol, with
``_INTERLOCK_COMPLETE=complete_bash`` and ``COMP_WORDS``/``COMP_CWORD`` (zsh:
``complete_zsh`` with ``_TYPER_COMPLETE_ARGS``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main

from interlock import __version__
from interlock.cli import completion
from interlock.cli.launch import run
from interlock.cli.main import app, main
from tests.conftest import isolate_cli
from tests.databases.conftest import INTEGRATION as DATABASE_INTEGRATION
from tests.databases.conftest import manifest_text
from tests.events.test_registry import MANIFEST as EVENTS_MANIFEST
from tests.files.quarantine_support import INTEGRATION as FILE_INTEGRATION
from tests.files.quarantine_support import manifest as files_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "interlock.yaml"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Own data directory, no INTERLOCK_* settings, HOME and the working directory in tmp."""
    isolate_cli(monkeypatch, tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no ./interlock.yaml here


def _complete(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], line: str
) -> list[str]:
    """What bash is offered for the last word of ``line`` (a trailing space: a new word)."""
    words = line.split(" ")
    monkeypatch.setenv("_INTERLOCK_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", line)
    monkeypatch.setenv("COMP_CWORD", str(len(words) - 1))
    assert main([]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out.split()


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("bash", "complete -o default -F _interlock_completion interlock"),
        ("zsh", "compdef _interlock_completion interlock"),
        ("fish", "complete --command interlock"),
    ],
)
def test_show_completion_prints_the_script_of_the_named_shell(
    shell: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The script of the shell asked for (not of the shell the test runs in)."""
    assert main(["--show-completion", shell]) == 0
    out = capsys.readouterr().out
    assert expected in out
    assert f"_INTERLOCK_COMPLETE=complete_{shell}" in out


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """One line naming the shells there are."""
    assert main(["--show-completion", "tcsh"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "interlock: error[invalid_request]: no completion for the shell 'tcsh'; "
        "choose one of bash, zsh, fish"
    )


#: Per shell: where the script goes under HOME, and the rc file and line that load it.
_INSTALLED = {
    "bash": (".bash_completions/interlock.sh", ".bashrc", "source '{script}'"),
    "zsh": (".zfunc/_interlock", ".zshrc", "fpath+=~/.zfunc"),
    "fish": (".config/fish/completions/interlock.fish", None, None),
}


@pytest.mark.parametrize("shell", sorted(_INSTALLED))
def test_install_completion_writes_the_script_and_loads_it_from_the_shell_rc(
    shell: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In the (test's) home directory: the script, and the rc line that loads it."""
    home = tmp_path / "home"
    script, rc, line = _INSTALLED[shell]
    assert main(["--install-completion", shell]) == 0
    assert f"{shell} completion installed in {home / script}" in capsys.readouterr().out
    assert f"_INTERLOCK_COMPLETE=complete_{shell}" in (home / script).read_text()
    if rc is not None and line is not None:
        assert line.format(script=home / script) in (home / rc).read_text()


@pytest.mark.parametrize(
    ("running", "login", "installed"),
    [
        ("zsh", "/bin/bash", "zsh"),  # the shell the command runs in comes first
        ("sh", "/usr/bin/fish", "fish"),  # run from sh (a Makefile, cron): the login shell
        (None, "/bin/bash", "bash"),  # no shell among the ancestors
    ],
)
def test_install_completion_without_a_name_picks_the_running_or_the_login_shell(
    running: str | None,
    login: str,
    installed: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--install-completion`` alone: the running shell if supported, else ``$SHELL``'s."""
    monkeypatch.setattr(completion, "_get_shell_name", lambda: running)
    monkeypatch.setenv("SHELL", login)
    assert main(["--install-completion"]) == 0
    assert capsys.readouterr().out.startswith(f"{installed} completion installed in ")


def test_install_completion_from_sh_without_a_login_shell_asks_for_its_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Typer said "Shell sh is not supported." and exited 1; now a usage error naming the fix."""
    monkeypatch.setattr(completion, "_get_shell_name", lambda: "sh")
    monkeypatch.delenv("SHELL", raising=False)
    assert main(["--install-completion"]) == 2
    assert capsys.readouterr().err == (
        "interlock: error[invalid_request]: cannot tell which shell to install completion for; "
        "name one: interlock --install-completion bash|zsh|fish\n"
    )
    assert not (tmp_path / "home").exists()


def test_typer_flags_are_on_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    """--install-completion and --show-completion are listed (Typer's, for the detected shell)."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--install-completion" in out
    assert "--show-completion" in out


def test_sub_commands_complete(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Commands and groups by prefix, then a group's commands."""
    assert _complete(monkeypatch, capsys, "interlock cl") == ["clients"]
    assert {"create", "list", "rotate", "revoke"} <= set(
        _complete(monkeypatch, capsys, "interlock keys ")
    )
    assert _complete(monkeypatch, capsys, "interlock pki issue c") == ["client"]


@pytest.mark.parametrize(
    ("line", "names"),
    [
        # keys create: the clients that may use API keys (not order-sync: oauth2, mtls).
        ("interlock keys create ", ["analytics-feed", "privacy-desk"]),
        ("interlock oauth token ", ["order-sync"]),
        ("interlock clients create-secret ", ["order-sync"]),
        ("interlock clients revoke o", ["order-sync"]),
        ("interlock pki issue client ", ["order-sync", "erp-events", "crm-events"]),
        ("interlock secrets grant p", ["privacy-desk"]),
        ("interlock secrets get crm/", ["crm/oauth-client", "crm/readonly-url"]),
        ("interlock secrets rotate e", ["erp/api-key"]),
        ("interlock messaging plan ", ["order-events", "order-stream"]),
        ("interlock messaging keys list ", ["order-events"]),
        ("interlock privacy request confirm dsr_x ", ["erp", "crm", "warehouse"]),
    ],
)
def test_names_complete_from_the_manifest(
    line: str,
    names: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """INTERLOCK_MANIFEST's clients, secrets, integrations and systems, as each command takes."""
    monkeypatch.setenv("INTERLOCK_MANIFEST", str(EXAMPLE))
    assert _complete(monkeypatch, capsys, line) == names


def test_a_manifest_typed_before_the_name_is_the_one_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--manifest FILE`` before the argument wins over INTERLOCK_MANIFEST (none here)."""
    line = f"interlock clients list --manifest {EXAMPLE} a"
    assert _complete(monkeypatch, capsys, line) == ["analytics-feed"]


def test_zsh_gets_each_name_with_its_help(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """zsh shows what a name is next to it."""
    monkeypatch.setenv("INTERLOCK_MANIFEST", str(EXAMPLE))
    monkeypatch.setenv("_INTERLOCK_COMPLETE", "complete_zsh")
    monkeypatch.setenv("_TYPER_COMPLETE_ARGS", "interlock oauth token ")
    assert main([]) == 0
    assert '"order-sync":"client\\\\: oauth2, mtls"' in capsys.readouterr().out


def test_file_database_and_event_names_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command offers the integrations of its kind only."""
    files_manifest(tmp_path)  # ./interlock.yaml, the default manifest
    assert _complete(monkeypatch, capsys, "interlock files transfer ") == [FILE_INTEGRATION]
    assert _complete(monkeypatch, capsys, "interlock db plan ") == []
    database = tmp_path / "db.yaml"
    database.write_text(manifest_text("postgresql", "127.0.0.1", 5432, "shop", "public", "ro_"))
    monkeypatch.setenv("INTERLOCK_MANIFEST", str(database))
    assert _complete(monkeypatch, capsys, "interlock db plan ") == [DATABASE_INTEGRATION]
    assert _complete(monkeypatch, capsys, "interlock files transfer ") == []
    events = tmp_path / "events.yaml"
    events.write_text(EVENTS_MANIFEST)
    monkeypatch.setenv("INTERLOCK_MANIFEST", str(events))
    subjects = _complete(monkeypatch, capsys, "interlock events schemas list ")
    assert subjects == ["order.created", "order.cancelled"]
    assert _complete(monkeypatch, capsys, "interlock events schemas diff order.c") == subjects


@pytest.mark.parametrize("manifest", ["absent.yaml", "broken.yaml"])
def test_without_a_valid_manifest_there_are_no_names_and_no_errors(
    manifest: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing offered, nothing printed, nothing created: not even the data directory."""
    (tmp_path / "broken.yaml").write_text("version: 1\nclients: [\n")
    monkeypatch.setenv("INTERLOCK_MANIFEST", str(tmp_path / manifest))
    assert _complete(monkeypatch, capsys, "interlock keys create ") == []
    assert not (tmp_path / "data").exists()  # the keyring was never opened


def test_completing_names_opens_no_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names come from the manifest alone: the data directory is not even created."""
    monkeypatch.setenv("INTERLOCK_MANIFEST", str(EXAMPLE))
    assert _complete(monkeypatch, capsys, "interlock secrets get ")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("argv", [["--version"], ["-V"], ["version"]])
def test_version_flag_and_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """``interlock --version``, ``-V`` and ``interlock version`` print the same line."""
    assert main(argv) == 0
    assert capsys.readouterr().out == f"interlock {__version__}\n"


def test_the_console_script_answers_version_before_loading_the_cli(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``interlock --version`` through the entry point exits 0 with the version."""
    with pytest.raises(SystemExit) as exited:
        run(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"interlock {__version__}\n"


def test_every_integration_completes_for_commands_that_take_any(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``integration_names`` (for options such as an audit search's) offers them all."""
    monkeypatch.setenv("INTERLOCK_MANIFEST", str(EXAMPLE))
    context = typer.Context(typer.main.get_command(app))
    offered = [name for name, _ in completion.integration_names(context, "")]
    assert offered == ["order-sync", "analytics-feed", "order-events", "order-stream"]
    assert completion.integration_names(context, "zzz") == []


@pytest.mark.processes
def test_bash_completes_with_the_script_it_is_shown(tmp_path: Path) -> None:
    """A real bash sources ``--show-completion bash`` and completes a client name with it."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    script = (
        "source <(interlock --show-completion bash); "
        'COMP_WORDS=(interlock keys create ""); COMP_CWORD=3; '
        '_interlock_completion interlock; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "INTERLOCK_MANIFEST": str(EXAMPLE),
        "INTERLOCK_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(  # noqa: S603  (bash and our own CLI, fixed arguments)
        [bash, "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert result.stdout.split() == ["analytics-feed", "privacy-desk"]
    assert result.stderr == ""
    assert not (tmp_path / "data").exists()
