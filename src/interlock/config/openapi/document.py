"""Reading an OpenAPI 3.0/3.1 document: untrusted input, capped in size and depth.

YAML goes through our safe reader, JSON through :mod:`json` (duplicate keys
refused); parts the import never reads (responses, examples, ...) may hold
problems that do not stop it. :class:`Resolver` is what the schema and
parameter mappings need from the converter that walks the document.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from interlock.config.loader import format_path
from interlock.config.yaml_source import (
    MAX_BYTES,
    MAX_DEPTH,
    DocPath,
    YamlDocument,
    YamlSourceError,
    read_yaml,
)
from interlock.errors import ConfigError

__all__ = ["OpenApiDocument", "OpenApiError", "Resolver", "read_openapi"]

_VERSION: Final = re.compile(r"^3\.([01])\.\d+$")

# Parts of a document the import never reads: problems there (YAML 1.1 integer
# keys such as `200:` under responses) do not stop it.
_UNREAD: Final = frozenset({"responses", "callbacks", "examples", "links", "webhooks", "info"})


class OpenApiError(ConfigError):
    """The OpenAPI document cannot be imported; the message names file, line and field."""

    code = "openapi_invalid"


@dataclass(frozen=True)
class OpenApiDocument:
    """A parsed OpenAPI document and where each of its values stands."""

    file: str
    data: Mapping[str, Any]
    version: Literal["3.0", "3.1"]
    source: YamlDocument | None = None

    def locate(
        self,
        path: DocPath,
        message: str,
        *,
        warning: bool = False,
        key: bool = False,
        note: bool = False,
    ) -> str:
        """``FILE:LINE:COL: [warning: |note: ]field.path: message`` (at the key if ``key``)."""
        line, column = self.source.position(path, key=key) if self.source else (1, 1)
        where = f"{format_path(path)}: " if path else ""
        label = "warning: " if warning else "note: " if note else ""
        return f"{self.file}:{line}:{column}: {label}{where}{message}"

    def error(self, path: DocPath, message: str) -> OpenApiError:
        """An :class:`OpenApiError` located at ``path``."""
        return OpenApiError(self.locate(path, message))


class Resolver(Protocol):
    """What the schema and parameter mappings use of the converter walking a document."""

    doc: OpenApiDocument
    warnings: list[str]
    # One line per data category proposed for a request body field (docs/privacy.md).
    notes: list[str]

    def warn(self, path: DocPath, message: str, *, key: bool = False) -> None:
        """Record a warning located at ``path`` (at its key if ``key``)."""

    def lookup(self, ref: object, at: DocPath) -> tuple[Any, DocPath]:
        """The value a local ``$ref`` names, and its path; remote references are refused."""

    def deref(self, node: Any, at: DocPath) -> tuple[Any, DocPath]:
        """``node`` with its chain of ``$ref`` followed, and where it ends."""


def read_openapi(path: Path) -> OpenApiDocument:
    """Read an OpenAPI 3.0.x or 3.1.x document; :class:`OpenApiError` otherwise."""
    file = str(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(MAX_BYTES + 1).lstrip()[:1]
    except OSError as exc:
        raise OpenApiError(f"{file}:1:1: cannot read file: {exc.strerror}") from None
    if head == b"{":
        data, source = _read_json(path)
    else:
        try:
            source = read_yaml(path)
        except YamlSourceError as exc:
            problem = exc.problem
            raise OpenApiError(
                f"{file}:{problem.line}:{problem.column}: {problem.message}"
            ) from None
        data = source.data
    doc = OpenApiDocument(file, data if isinstance(data, dict) else {}, "3.0", source)
    for problem in source.problems if source else ():
        if not _UNREAD.intersection(str(part) for part in problem.path):
            raise doc.error(problem.path, problem.message)
    return dataclasses.replace(doc, version=_version(doc, data))


def _read_json(path: Path) -> tuple[object, YamlDocument | None]:
    file = str(path)
    raw = path.read_bytes()[: MAX_BYTES + 1]
    if len(raw) > MAX_BYTES:
        raise OpenApiError(f"{file}:1:1: file is larger than {MAX_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as exc:
        raise OpenApiError(f"{file}:1:1: not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise OpenApiError(f"{file}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise OpenApiError(f"{file}:1:1: {reason}") from None
    if _depth(data) > MAX_DEPTH:
        raise OpenApiError(f"{file}:1:1: nested deeper than {MAX_DEPTH} levels")
    # Positions only: JSON is YAML, but PyYAML reads a few JSON numbers as text.
    try:
        return data, read_yaml(path)
    except YamlSourceError:
        return data, None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _depth(data: object) -> int:
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = list(node.values()) if isinstance(node, dict) else node
        if isinstance(children, list):
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def _version(doc: OpenApiDocument, data: object) -> Literal["3.0", "3.1"]:
    if not isinstance(data, dict):
        raise doc.error((), "an OpenAPI document is a mapping with openapi, info and paths")
    if "swagger" in data:
        raise doc.error(
            ("swagger",),
            f"Swagger {data['swagger']} (OpenAPI 2) is not supported; convert the document "
            "to OpenAPI 3 first (e.g. with swagger2openapi)",
        )
    text = data.get("openapi")
    found = _VERSION.match(text) if isinstance(text, str) else None
    if found is None:
        raise doc.error(("openapi",), f"unsupported OpenAPI version {text!r}; use 3.0.x or 3.1.x")
    if not isinstance(data.get("paths", {}), dict):
        raise doc.error(("paths",), "paths must be a mapping")
    return "3.0" if found.group(1) == "0" else "3.1"
