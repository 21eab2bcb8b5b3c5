"""Rules over the package's source that no linter setting can be talked out of.

ruff's S101 flags ``assert`` in ``src``, but a ``# noqa: S101`` silences it line by
line; ``python -O`` strips every ``assert``, so one that guards a real condition
vanishes in an optimised deployment (issue 16, "no ``assert`` in ``src``"). A
condition is checked with ``if ...: raise``, an exhaustive match ends in
``typing.assert_never``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

SRC = REPO_ROOT / "src" / "interlock"


def _asserts(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Assert)
    ]


def test_the_walk_finds_the_package_source() -> None:
    """Not vacuous: the package's modules are there to be read."""
    assert len(list(SRC.rglob("*.py"))) > 200


def test_no_assert_statement_in_the_package() -> None:
    """Every ``assert`` in ``src`` is named with its line (none may remain)."""
    found = [where for path in sorted(SRC.rglob("*.py")) for where in _asserts(path)]
    assert found == []
