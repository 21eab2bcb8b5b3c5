"""Secrets assigned in Python source: names, attributes, keys, keyword arguments, defaults.

Also a password *checked against* a literal (``if password == "root":``): the
literal is then the credential itself, however weak (CWE-259, hard-coded
password), so only an empty, placeholder or one-character value is let go.

Only string literals count: ``password = os.environ["DB_PASSWORD"]`` or
``token = load_token()`` are the right way and are never reported, and text in
comments and docstrings is not code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from interlock.credentials.names import secret_field
from interlock.credentials.values import is_placeholder
from interlock.scan.assignments import secret_value
from interlock.scan.finding import Match

__all__ = ["find_python_secrets"]

_HOLDERS = (ast.Assign, ast.AnnAssign, ast.Call, ast.Dict, ast.FunctionDef, ast.AsyncFunctionDef)
_MIN_COMPARED = 4  # shorter literals are sentinels ("", "-", "no"), not passwords


def find_python_secrets(nodes: list[ast.AST]) -> Iterator[Match]:
    """Every string literal given to a secret-named target among ``nodes`` (a walked tree)."""
    for node in nodes:
        if isinstance(node, ast.Compare):
            yield from _compared(node)
            continue
        if not isinstance(node, _HOLDERS):
            continue
        for name, value in _pairs(node):
            field = secret_field(name) if name else None
            if (
                field is not None
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
                and secret_value(field, value.value)
            ):
                yield Match("generic-secret", value.lineno, value.col_offset + 1, value.value)


def _compared(node: ast.Compare) -> Iterator[Match]:
    """``password == "literal"`` (either side, ``==`` or ``!=``) on a password-named operand."""
    if len(node.ops) != 1 or not isinstance(node.ops[0], ast.Eq | ast.NotEq):
        return
    for named, other in ((node.left, node.comparators[0]), (node.comparators[0], node.left)):
        name = _name(named)
        if (
            name is not None
            and secret_field(name) == "password"
            and isinstance(other, ast.Constant)
            and isinstance(other.value, str)
            and len(other.value) >= _MIN_COMPARED
            and not is_placeholder(other.value)
        ):
            yield Match("generic-secret", other.lineno, other.col_offset + 1, other.value)


def _pairs(node: ast.AST) -> Iterator[tuple[str | None, ast.expr | None]]:
    if isinstance(node, ast.Assign):
        for target in node.targets:
            yield _name(target), node.value
    elif isinstance(node, ast.AnnAssign):
        yield _name(node.target), node.value
    elif isinstance(node, ast.Call):
        for keyword in node.keywords:
            yield keyword.arg, keyword.value
    elif isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                yield key.value, value
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        positional = [*node.args.posonlyargs, *node.args.args]
        for arg, default in zip(
            positional[-len(node.args.defaults) :], node.args.defaults, strict=False
        ):
            yield arg.arg, default
        for arg, kw_default in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True):
            yield arg.arg, kw_default


def _name(target: ast.expr) -> str | None:
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
        value = target.slice.value
        return value if isinstance(value, str) else None
    return None
