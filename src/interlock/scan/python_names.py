"""Resolve names in a Python module to what they were imported as.

``import yaml as y`` makes ``y.load`` mean ``yaml.load``; ``from lxml import
etree`` makes ``etree.parse`` mean ``lxml.etree.parse``. A name that was not
imported resolves to ``None``, so a local variable called ``yaml`` (say a
ruamel ``YAML()`` instance) is never mistaken for the module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

__all__ = ["Imports", "is_false", "is_true", "last_name"]


class Imports:
    """The import aliases of one module (all scopes flattened: good enough for a linter)."""

    def __init__(self, nodes: Iterable[ast.AST]) -> None:
        self._aliases: dict[str, str] = {}
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self._aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self._aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    self._aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def resolve(self, node: ast.expr) -> str | None:
        """The dotted, imported name ``node`` refers to, or ``None``."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self._aliases:
            return None
        return ".".join([self._aliases[node.id], *reversed(parts)])


def last_name(node: ast.expr) -> str | None:
    """The last identifier of a name, attribute chain or call (``AutoAddPolicy``)."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def is_false(node: ast.expr | None) -> bool:
    """A literal ``False`` or ``0``."""
    return isinstance(node, ast.Constant) and node.value in (False, 0) and node.value is not None


def is_true(node: ast.expr | None) -> bool:
    """A literal ``True`` or ``1``."""
    return isinstance(node, ast.Constant) and node.value is True
