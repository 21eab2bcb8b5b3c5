"""The shell commands of the README and docs/*.md: fenced sh/shell/bash/console blocks.

In ``sh``, ``shell`` and ``bash`` blocks every line is a command (a trailing
``\\`` continues it); in ``console`` blocks only lines starting with ``$ `` are,
the others being their output. Blank lines and comment-only lines are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["Command", "Unrun", "commands", "documents", "split_comment", "unrun"]

_FENCE: Final = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)\s*(?P<info>[^\s`]*)")
_SHELL: Final = frozenset({"sh", "shell", "bash", "console"})
_ASSIGNMENTS: Final = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)+")  # NAME=value cmd
# "# exits 1 when ..." / "exit 0 clean, 1 findings": the statuses a comment documents.
_EXITS: Final = re.compile(r"\bexits?\s+((?:\d+[^,;]*?(?:,\s*|$))+)")
_STATUS: Final = re.compile(r"(?:^|,\s*)(\d+)")
_USAGE: Final = 2  # a usage error is never what a documented command should do


@dataclass(frozen=True)
class Command:
    """One command line as the reader sees it, with where it is written."""

    document: str  # relative to the repository: README.md, docs/mtls.md
    line: int
    text: str  # the command, without its trailing comment
    comment: str

    @property
    def where(self) -> str:
        """``docs/mtls.md:20``, for messages."""
        return f"{self.document}:{self.line}"

    def allowed_statuses(self) -> frozenset[int]:
        """0, and every status the trailing comment says the command exits with."""
        found = {0}
        for match in _EXITS.finditer(self.comment):
            found.update(int(n) for n in _STATUS.findall(match.group(1)))
        return frozenset(found - {_USAGE})


def documents(root: Path) -> list[str]:
    """README.md, then every docs/*.md in name order (new documents are picked up)."""
    return ["README.md", *(f"docs/{p.name}" for p in sorted((root / "docs").glob("*.md")))]


def commands(root: Path, document: str) -> list[Command]:
    """The commands of ``document``'s shell blocks, in order."""
    found: list[Command] = []
    fence: str | None = None
    console = False
    pending: tuple[int, str] | None = None
    for at, raw in enumerate((root / document).read_text(encoding="utf-8").splitlines(), 1):
        line, number = raw, at
        opened = _FENCE.match(line)
        if fence is None:
            if opened is not None:
                fence = opened.group("fence")
                shell = opened.group("info").lower()
                console = shell == "console"
                if shell not in _SHELL:
                    fence = "skip:" + fence
            continue
        if line.strip().startswith(fence.removeprefix("skip:")) and line.strip().strip("`~") == "":
            fence = None
            continue
        if fence.startswith("skip:"):
            continue
        if pending is not None:
            start, text = pending
            line = text + " " + line.strip()
            number = start
        elif console:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if line.rstrip().endswith("\\"):
            pending = (number, line.rstrip()[:-1].rstrip())
            continue
        pending = None
        text, comment = split_comment(line)
        if text:
            found.append(Command(document, number, text, comment))
    return found


@dataclass(frozen=True)
class Unrun:
    """An ``interlock ...`` (or ``$ interlock ...``) line in a fence that is not a shell's."""

    document: str
    line: int
    info: str  # the fence's language, "" when it has none
    text: str  # the line, stripped, without its ``$ ``

    @property
    def where(self) -> str:
        """``docs/scale.md:28``, for messages."""
        return f"{self.document}:{self.line}"


def unrun(root: Path, document: str) -> list[Unrun]:
    """The lines of ``document`` that read as ``interlock`` commands (``NAME=value interlock``
    too) but are in no shell block."""
    found: list[Unrun] = []
    fence: str | None = None
    info = ""
    for at, line in enumerate((root / document).read_text(encoding="utf-8").splitlines(), 1):
        opened = _FENCE.match(line)
        if fence is None:
            if opened is not None:
                fence, info = opened.group("fence"), opened.group("info").lower()
            continue
        if line.strip().startswith(fence) and line.strip().strip("`~") == "":
            fence = None
            continue
        text = line.strip().removeprefix("$ ")
        if info not in _SHELL and _ASSIGNMENTS.sub("", text).startswith("interlock "):
            found.append(Unrun(document, at, info, text))
    return found


def split_comment(line: str) -> tuple[str, str]:
    """The command and its trailing ``# comment`` (a ``#`` outside quotes, after a blank)."""
    quote: str | None = None
    for index, char in enumerate(line):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].strip(), line[index + 1 :].strip()
    return line.strip(), ""
