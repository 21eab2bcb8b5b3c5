"""Rules over the package's source that no linter setting can be talked out of.

The import contract (``[tool.importlinter]``, ``lint-imports`` in ``make test``)
checks only the packages it names: every top-level package must sit in a layer,
and the SDK's contract must forbid every package above the foundation.

ruff's S101 flags ``assert`` in ``src``, but a ``# noqa: S101`` silences it line by
line; ``python -O`` strips every ``assert``, so one that guards a real condition
vanishes in an optimised deployment (issue 16, "no ``assert`` in ``src``"). A
condition is checked with ``if ...: raise``, an exhaustive match ends in
``typing.assert_never``.
"""

from __future__ import annotations

import ast
import pkgutil
import re
import tomllib
from pathlib import Path
from typing import Any

import interlock
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


def _contracts() -> dict[str, dict[str, Any]]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        config = tomllib.load(file)
    contracts = config["tool"]["importlinter"]["contracts"]
    return {contract["name"]: contract for contract in contracts}


def _top_level() -> set[str]:
    """Every package and module directly under ``interlock`` (``interlock.NAME``)."""
    return {f"interlock.{info.name}" for info in pkgutil.iter_modules(interlock.__path__)}


def _layer_members(layer: str) -> set[str]:
    return {name.strip() for name in re.split(r"[|:]", layer)}


def test_every_package_but_the_sdk_sits_in_a_layer() -> None:
    """A package missing from the layers contract could import anything unchecked."""
    layers = _contracts()["Layers: faces, domain, storage, foundation"]["layers"]
    listed = set().union(*(_layer_members(layer) for layer in layers))
    assert _top_level() - listed == {"interlock.sdk"}


def test_the_sdk_may_import_nothing_above_the_foundation() -> None:
    """Every package outside the foundation layer is forbidden to ``interlock.sdk``.

    The contract lists what is forbidden, so a package left off the list (a new
    one, or ``privacy`` and ``services`` before) would let the SDK pull in the
    server unnoticed.
    """
    layers = _contracts()["Layers: faces, domain, storage, foundation"]["layers"]
    foundation = _layer_members(layers[-1])
    forbidden = set(_contracts()["The SDK stands on the foundation alone"]["forbidden_modules"])
    assert _top_level() - foundation - {"interlock.sdk"} - forbidden == set()
