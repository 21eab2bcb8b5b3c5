"""The small part of sh the documented commands use, parsed without a shell.

Supported, and nothing else (anything else is refused, naming the line):
``A && B``, ``A ; B``, ``NAME=value command``, ``export NAME=value``,
``echo WORDS | command``, ``printf %s WORD | command``, ``< file``, ``> file``.
``$NAME``, ``${NAME}`` and a leading ``~`` (``$HOME``) are expanded from the
session's variables before the line is split (their values are checked to need
no quoting).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Step", "UnsupportedShellError", "expand", "parse"]

_VARIABLE: Final = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_ASSIGNMENT: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_TILDE: Final = re.compile(r"(?<![^\s=])~(?=/|\s|$)")  # `~/x` and `a=~/x`: the home directory
_SAFE_VALUE: Final = re.compile(r"^[A-Za-z0-9_@%+=:,./-]*$")


class UnsupportedShellError(ValueError):
    """A construct this parser does not run."""


@dataclass
class Step:
    """One simple command, with what feeds it and where its output goes."""

    argv: list[str]
    assignments: dict[str, str] = field(default_factory=dict)
    stdin_text: str | None = None  # from `echo ... |` or `printf %s ... |`
    stdin_file: str | None = None
    stdout_file: str | None = None
    export: bool = False  # `export NAME=value`: assignments persist


def expand(text: str, variables: dict[str, str]) -> str:
    """``text`` with ``$NAME`` / ``${NAME}`` replaced; an unknown or unsafe value is refused."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise UnsupportedShellError(f"${name} is not set (add it to the test's variables)")
        found = variables[name]
        if not _SAFE_VALUE.match(found):
            raise UnsupportedShellError(f"${name}'s value would need quoting")
        return found

    text = _TILDE.sub("${HOME}", text)
    return _VARIABLE.sub(value, text)


def parse(text: str) -> list[Step]:
    """The steps of one command line (already expanded)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    tokens = list(lexer)
    steps: list[Step] = []
    while tokens:  # `A && B` and `A ; B` alike: every step of a documented line must succeed
        end = next((i for i, t in enumerate(tokens) if t in ("&&", ";")), len(tokens))
        steps.append(_pipeline(tokens[:end]))
        tokens = tokens[end + 1 :]
    return steps


def _pipeline(tokens: list[str]) -> Step:
    stdin_text: str | None = None
    if "|" in tokens:
        bar = tokens.index("|")
        stdin_text = _producer(tokens[:bar])
        tokens = tokens[bar + 1 :]
        if "|" in tokens:
            raise UnsupportedShellError("only `echo ... |` or `printf %s ... |` may feed a command")
    step = Step([], stdin_text=stdin_text)
    if tokens[:1] == ["export"]:
        step.export = True
        tokens = tokens[1:]
    words = iter(tokens)
    for token in words:
        if token in ("<", ">"):
            _redirect(step, token, next(words, None))
        elif token in ("&", "||", ">>", "<<", "&>", ">&", "|&"):
            raise UnsupportedShellError(f"{token!r} is not supported")
        elif not step.argv and _ASSIGNMENT.match(token):
            name, value = token.split("=", 1)
            step.assignments[name] = value
        else:
            step.argv.append(token)
    if step.export and step.argv:
        raise UnsupportedShellError("export takes NAME=value only")
    if not step.export and not step.argv:
        raise UnsupportedShellError("no command")
    return step


def _redirect(step: Step, operator: str, target: str | None) -> None:
    if target is None:
        raise UnsupportedShellError(f"{operator} names no file")
    if operator == "<":
        step.stdin_file = target
    else:
        step.stdout_file = target


def _producer(tokens: list[str]) -> str:
    if tokens[:1] == ["echo"]:
        return " ".join(tokens[1:]) + "\n"
    if tokens[:2] == ["printf", "%s"] and len(tokens) == 3:
        return tokens[2]
    raise UnsupportedShellError(f"{shlex.join(tokens)!r} cannot feed a command here")
