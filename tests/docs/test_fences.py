"""A command written in the docs is run by a test, or is visibly not a command.

test_commands.py runs the lines of ``sh``/``shell``/``bash``/``console`` fences.
Any other line of README.md or docs/*.md that reads ``interlock ...`` (or
``$ interlock ...``, ``NAME=value interlock ...``) is a synopsis, and must look
like one:

* its fence is labelled ``text`` (an unlabelled fence says nothing: label it
  ``sh`` to have the test run it, ``text`` for a synopsis);
* the command (before a trailing ``# comment``) has placeholder syntax:
  ``[optional]``, ``<value>``, ``...``/``…``, or a word in CAPS standing for a
  value (``SUBJECT``, ``FILE``, ``ID``).

A line that is neither (a command that cannot run in a test) is listed in
``NOT_RUN`` with the reason. Keep that list short.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import pytest

from tests.docs.blocks import Unrun, documents, split_comment, unrun
from tests.docs.test_commands import REPO

#: Commands shown but not run, by document and a pattern of the line. Each has its reason.
NOT_RUN: Final[dict[tuple[str, str], str]] = {
    ("docs/edge.md", r"^(INTERLOCK_\w+=\S+ )?interlock edge (serve|nginx|reload) "): (
        "the production layout: root's /etc/interlock/nginx and /run/interlock, nginx's user "
        "www-data, port 443; tests/gateway/edge (test_cli.py, test_workers.py) runs the three "
        "commands on temporary paths and free ports"
    ),
}

_PLACEHOLDER: Final = re.compile(
    r"\[|<[^\s<>]+>|\.\.\.|…|(?<![\w=/.-])[A-Z][A-Z0-9_]*[A-Z0-9](?![\w=/.-])"
)


def is_synopsis(line: Unrun) -> bool:
    """Whether ``line`` is a labelled synopsis: a ``text`` fence and placeholder syntax."""
    command, _ = split_comment(line.text)
    return line.info == "text" and _PLACEHOLDER.search(command) is not None


def _not_run(line: Unrun) -> str | None:
    for (document, pattern), reason in NOT_RUN.items():
        if line.document == document and re.search(pattern, line.text):
            return reason
    return None


@pytest.mark.parametrize("document", documents(REPO))
def test_every_command_outside_shell_fences_is_a_synopsis(document: str) -> None:
    """No ``interlock`` command hides in a text or unlabelled fence, where nothing runs it."""
    hidden = [
        f"{line.where} [{line.info or 'no language'}]: {line.text}"
        for line in unrun(REPO, document)
        if not is_synopsis(line) and _not_run(line) is None
    ]
    assert not hidden, (
        "commands no test runs: put them in a sh (or console) fence, or write them as a "
        "synopsis in a text fence ([--option], <value>, CAPS placeholders):\n" + "\n".join(hidden)
    )


def test_not_run_names_lines_that_exist() -> None:
    """Each NOT_RUN entry still matches a line (a fixed doc leaves no stale exception)."""
    lines = [line for d in documents(REPO) for line in unrun(REPO, d)]
    stale = [
        key
        for key in NOT_RUN
        if not any(line.document == key[0] and re.search(key[1], line.text) for line in lines)
    ]
    assert not stale, stale


@pytest.mark.parametrize(
    ("info", "text", "synopsis"),
    [
        ("text", "interlock doctor [--json]", True),
        ("text", "interlock privacy request show ID --out FILE", True),
        ("text", "interlock edge nginx ... --socket /run/a.sock", True),
        ("text", "interlock manifest show <version>", True),
        ("text", "interlock manifest status", False),
        (
            "text",
            "interlock secrets rotate --due   # NOT a synopsis: the comment is ignored",
            False,
        ),
        ("text", "INTERLOCK_X=1 interlock serve", False),
        ("text", "INTERLOCK_X=1 interlock serve --listen HOST:PORT", True),
        ("text", "interlock secrets put db/a --kind database_password < admin.json", False),
        ("", "interlock doctor [--json]", False),
    ],
)
def test_what_reads_as_a_synopsis(info: str, text: str, synopsis: bool) -> None:
    """Placeholder syntax in a text fence is a synopsis; a plain command never is."""
    assert is_synopsis(Unrun("docs/x.md", 1, info, text)) is synopsis


def test_commands_are_found_in_text_and_unlabelled_fences_only(tmp_path: Path) -> None:
    """sh and console lines are run (not listed); text, unlabelled and yaml ones are listed."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.md").write_text(
        "```sh\ninterlock init\n```\n\n"
        "```console\n$ interlock doctor\ninterlock: error[x]: output\n```\n\n"
        "```\ninterlock manifest status\n```\n\n"
        "~~~text\n$ interlock db audit crm\nX=1 interlock serve\nprintf %s x | interlock a\n~~~\n",
        encoding="utf-8",
    )
    found = [(u.line, u.info, u.text) for u in unrun(tmp_path, "docs/x.md")]
    assert found == [
        (11, "", "interlock manifest status"),
        (15, "text", "interlock db audit crm"),
        (16, "text", "X=1 interlock serve"),
    ]
