"""Insecure switches in Python source, found on the syntax tree.

Matching the tree rather than text finds the common forms a call-pattern rule
misses: ``verify=False`` on *any* call (a ``Session`` method, ``httpx.Client``,
a wrapper), the same key in a ``**{"verify": False}`` dict or a kwargs dict
built earlier, ``session.verify = False``, ``ssl.CERT_NONE`` wherever it is
used, ``ctx.check_hostname = False``, ``set_missing_host_key_policy`` with
either paramiko policy, ``yaml.load`` with an unsafe or missing loader, and
XML parsers with entity resolution on. Strings, comments and docstrings are
never matched.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Final

from interlock.scan.config_switches import SSLMODE_DISABLE
from interlock.scan.finding import Match
from interlock.scan.python_names import Imports, is_false, is_true, last_name

__all__ = ["find_python_switches"]

# Keyword / attribute / dict-key names whose false value turns certificate checks off.
_VERIFY_NAMES: Final = frozenset(
    {
        "verify",
        "verify_ssl",
        "ssl_verify",
        "verify_certs",
        "verify_tls",
        "tls_verify",
        "validate_certs",
    }
)
_HOSTNAME_NAMES: Final = frozenset({"check_hostname", "assert_hostname"})
_SAFE_YAML_LOADERS: Final = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})
_UNSAFE_YAML_LOADERS: Final = frozenset(
    {"Loader", "UnsafeLoader", "FullLoader", "CLoader", "CUnsafeLoader", "CFullLoader"}
)
_YAML_LOADS: Final = frozenset({"yaml.load", "yaml.load_all"})
_YAML_UNSAFE: Final = frozenset(
    {"yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load", "yaml.full_load_all"}
)
_SSH_POLICIES: Final = frozenset({"AutoAddPolicy", "WarningPolicy"})
_LXML_PARSE: Final = frozenset({"lxml.etree.parse", "lxml.etree.fromstring", "lxml.etree.XML"})
_STDLIB_XML: Final = frozenset(
    {
        *(
            f"xml.etree.{m}.{f}"
            for m in ("ElementTree", "cElementTree")
            for f in ("parse", "fromstring", "XML", "iterparse", "XMLParser", "fromstringlist")
        ),
        "xml.dom.minidom.parse",
        "xml.dom.minidom.parseString",
        "xml.dom.pulldom.parse",
        "xml.dom.pulldom.parseString",
        "xml.sax.parse",
        "xml.sax.parseString",
    }
)
_EXTERNAL_FEATURES: Final = frozenset({"feature_external_ges", "feature_external_pes"})


def find_python_switches(nodes: list[ast.AST], lines: list[str]) -> Iterator[Match]:
    """Every insecure switch among ``nodes`` (a walked module; ``lines``: its source)."""
    imports = Imports(nodes)
    # `if ctx.verify_mode == ssl.CERT_NONE: raise ...` guards against the switch: not a use.
    compared = {
        id(inner)
        for node in nodes
        if isinstance(node, ast.Compare)
        for part in (node.left, *node.comparators)
        for inner in ast.walk(part)
    }
    docstrings = {
        id(node.value)
        for node in nodes
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in nodes:
        if id(node) in compared:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            # Connection strings in code; docstrings and bare strings are prose.
            if id(node) not in docstrings and SSLMODE_DISABLE.search(node.value):
                yield Match(
                    "postgres-sslmode-disable",
                    node.lineno,
                    node.col_offset + 1,
                    _source(lines, node),
                )
            continue
        for rule_id, at in _check(node, imports):
            yield Match(rule_id, at.lineno, at.col_offset + 1, _source(lines, at))


def _check(node: ast.AST, imports: Imports) -> Iterator[tuple[str, ast.expr | ast.stmt]]:
    if isinstance(node, ast.Call):
        yield from _call(node, imports)
    elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            name = _target_name(target)
            if name is not None and is_false(node.value):
                if name in _VERIFY_NAMES:
                    yield "tls-verify-disabled", node
                elif name in _HOSTNAME_NAMES:
                    yield "tls-hostname-check-disabled", node
    elif isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and is_false(value):
                if key.value in _VERIFY_NAMES:
                    yield "tls-verify-disabled", key
                elif key.value in _HOSTNAME_NAMES:
                    yield "tls-hostname-check-disabled", key
    elif isinstance(node, ast.Attribute | ast.Name):
        yield from _reference(node, imports)


def _reference(node: ast.Attribute | ast.Name, imports: Imports) -> Iterator[tuple[str, ast.expr]]:
    name = node.attr if isinstance(node, ast.Attribute) else None
    resolved = imports.resolve(node)
    if name == "CERT_NONE" or resolved == "ssl.CERT_NONE":
        yield "tls-cert-none", node
    elif name in {"_create_unverified_context", "_create_stdlib_context"} or resolved in {
        "ssl._create_unverified_context",
        "ssl._create_stdlib_context",
    }:
        yield "tls-unverified-context", node


def _call(node: ast.Call, imports: Imports) -> Iterator[tuple[str, ast.expr]]:
    for keyword in node.keywords:
        if keyword.arg in _VERIFY_NAMES and is_false(keyword.value):
            yield "tls-verify-disabled", keyword.value
        elif keyword.arg in _HOSTNAME_NAMES and is_false(keyword.value):
            yield "tls-hostname-check-disabled", keyword.value
        elif keyword.arg == "cert_reqs" and _constant(keyword.value) in {"CERT_NONE", "NONE"}:
            yield "tls-cert-none", keyword.value
    resolved = imports.resolve(node.func)
    called = last_name(node.func)
    if called == "set_missing_host_key_policy" and node.args:
        if last_name(node.args[0]) in _SSH_POLICIES:
            yield "ssh-unknown-host-accepted", node
    elif called in _SSH_POLICIES and (resolved or "paramiko").startswith("paramiko"):
        yield "ssh-unknown-host-accepted", node
    elif resolved is not None:
        yield from _library_call(node, resolved)
    if called == "setFeature" and len(node.args) == 2 and is_true(node.args[1]):
        feature = node.args[0]
        if last_name(feature) in _EXTERNAL_FEATURES or "external" in str(_constant(feature)):
            yield "xml-external-entities", node
    elif called == "XMLParser" and _entities_on(node):
        yield "xml-external-entities", node


def _library_call(node: ast.Call, resolved: str) -> Iterator[tuple[str, ast.expr]]:
    if resolved in _YAML_UNSAFE:
        yield "yaml-unsafe-load", node
    elif resolved in _YAML_LOADS:
        loader = _argument(node, 1, "Loader")
        name = None if loader is None else last_name(loader)
        if loader is None or name in _UNSAFE_YAML_LOADERS:
            yield "yaml-unsafe-load", node
    elif resolved == "ruamel.yaml.YAML" and _constant(_argument(node, 99, "typ")) == "unsafe":
        yield "yaml-unsafe-load", node
    elif resolved in _LXML_PARSE and _argument(node, 1, "parser") is None:
        yield "xml-lxml-default-parser", node
    elif resolved in _STDLIB_XML:
        yield "xml-stdlib-parse", node


def _entities_on(node: ast.Call) -> bool:
    for keyword in node.keywords:
        if keyword.arg in {"resolve_entities", "load_dtd"} and is_true(keyword.value):
            return True
        if keyword.arg == "no_network" and is_false(keyword.value):
            return True
    return False


def _argument(node: ast.Call, position: int, name: str) -> ast.expr | None:
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value
    return node.args[position] if len(node.args) > position else None


def _constant(node: ast.expr | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _target_name(target: ast.expr) -> str | None:
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
        value = target.slice.value
        return value if isinstance(value, str) else None
    return None


def _source(lines: list[str], node: ast.expr | ast.stmt) -> str:
    line = lines[node.lineno - 1] if 0 < node.lineno <= len(lines) else ""
    return line.strip()[:200]
