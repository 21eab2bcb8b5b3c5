"""Check that every direct dependency is installed at exactly its floor in pyproject.toml.

Run with the interpreter of the lowest venv (``make lowest``), after
``requirements/lowest.txt`` (``uv pip compile --resolution lowest-direct``) was
installed. A floor the resolver cannot reach (a release that does not exist, or
one another floor rules out) is not a version anyone can run, so it fails here,
as does a lowest set that is stale against pyproject.toml (refresh: ``make lock``).

Usage: python tools/check_floors.py [pyproject.toml]
Exit status: 0 when every floor is installed, 1 otherwise (one line per problem,
``FILE:LINE: field: message``).
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

#: The groups and extras `make lowest` installs; `bench` is not part of the tests.
GROUPS = ("dev",)
#: An extra made only of other extras of this project.
SELF_REFERENCE = "interlock"


@dataclass(frozen=True)
class Declared:
    """One requirement string and where pyproject.toml declares it."""

    field: str
    text: str


def declared(pyproject: dict[str, object]) -> Iterator[Declared]:
    """Every direct requirement: dependencies, each extra, the groups of GROUPS."""
    project = pyproject.get("project")
    if not isinstance(project, dict):
        return
    for text in project.get("dependencies", []):
        yield Declared("project.dependencies", text)
    for extra, items in project.get("optional-dependencies", {}).items():
        for text in items:
            yield Declared(f"project.optional-dependencies.{extra}", text)
    groups = pyproject.get("dependency-groups", {})
    if isinstance(groups, dict):
        for group in GROUPS:
            for text in groups.get(group, []):
                yield Declared(f"dependency-groups.{group}", text)


def floor_of(requirement: Requirement) -> Version | None:
    """The lowest version the requirement admits (``>=`` or ``==``), or ``None``."""
    floors = [
        Version(spec.version) for spec in requirement.specifier if spec.operator in (">=", "==")
    ]
    return max(floors) if floors else None


def line_of(text: str, lines: list[str]) -> int:
    """The 1-based line declaring ``text`` (0 when not found verbatim)."""
    quoted = f'"{text}"'
    return next((number for number, line in enumerate(lines, 1) if quoted in line), 0)


def problems(path: Path) -> list[str]:
    """One located message per direct dependency not installed at its floor."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found: list[str] = []
    for item in declared(tomllib.loads(source)):
        requirement = Requirement(item.text)
        if requirement.name == SELF_REFERENCE:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        where = f"{path}:{line_of(item.text, lines)}: {item.field}"
        floor = floor_of(requirement)
        if floor is None:
            found.append(
                f"{where}: {requirement.name} has no floor (>=); every dependency needs one"
            )
            continue
        try:
            installed = Version(metadata.version(requirement.name))
        except metadata.PackageNotFoundError:
            found.append(f"{where}: {requirement.name} is not installed (run `make lock`)")
            continue
        if installed != floor:
            found.append(
                f"{where}: {requirement.name} floor is {floor} but the lowest resolution "
                f"installs {installed}: raise the floor to {installed}, or run `make lock`"
            )
    return found


def main(argv: list[str]) -> int:
    """Print every problem; 0 when there is none."""
    path = Path(argv[1] if len(argv) > 1 else "pyproject.toml")
    found = problems(path)
    for line in found:
        print(line, file=sys.stderr)
    if not found:
        print(f"every direct dependency in {path} is installed at its floor")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
