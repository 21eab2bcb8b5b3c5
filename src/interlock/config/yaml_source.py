"""Read YAML safely and remember where every key and value stood.

PyYAML's safe loader composes the node graph (no Python object construction);
we then build plain data from it ourselves so that we can:

* record the line and column of every key and value, for located errors;
* refuse duplicate keys (PyYAML silently keeps the last one: a reviewer sees
  the first, Interlock would use the second);
* refuse aliases and merge keys (exponential "billion laughs" expansion, and
  values that silently come from elsewhere in the file);
* refuse non-string keys and files over a size cap;
* read ``yes``/``no``/``on``/``off`` as strings, as YAML 1.2 does, so that a
  country code ``NO`` stays Norway instead of becoming ``False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import yaml

__all__ = ["MAX_BYTES", "DocPath", "Located", "YamlDocument", "YamlSourceError", "read_yaml"]

MAX_BYTES: Final = 4 * 1024 * 1024
_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_STR_TAG: Final = "tag:yaml.org,2002:str"
_YAML12_BOOLS: Final = frozenset({"true", "false"})

DocPath = tuple[str | int, ...]
"""A location in the document: mapping keys and sequence indexes from the root."""


@dataclass(frozen=True)
class Located:
    """A problem found while reading, with its 1-based position."""

    path: DocPath
    line: int
    column: int
    message: str


class YamlSourceError(Exception):
    """The file cannot be read as YAML at all (one located problem)."""

    def __init__(self, problem: Located) -> None:
        super().__init__(problem.message)
        self.problem = problem


@dataclass
class YamlDocument:
    """Plain data from a YAML file, with positions and reading problems."""

    data: object
    values: dict[DocPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[DocPath, tuple[int, int]] = field(default_factory=dict)
    problems: list[Located] = field(default_factory=list)

    def position(self, path: DocPath, *, key: bool = False) -> tuple[int, int]:
        """Where ``path`` (or its nearest existing ancestor) starts in the file."""
        probe = tuple(path)
        while probe:
            if key and probe in self.keys:
                return self.keys[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), (1, 1))


def read_yaml(path: Path) -> YamlDocument:
    """Read ``path``; raises :class:`YamlSourceError` if it is not usable YAML."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise YamlSourceError(Located((), 1, 1, f"cannot read file: {exc.strerror}")) from None
    if len(raw) > MAX_BYTES:
        raise YamlSourceError(Located((), 1, 1, f"file is larger than {MAX_BYTES} bytes"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSourceError(
            Located((), 1, 1, f"not UTF-8 (byte {exc.start}); save the file as UTF-8")
        ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        raise YamlSourceError(Located((), line, column, f"invalid YAML: {reason}")) from None
    except yaml.YAMLError as exc:
        raise YamlSourceError(Located((), 1, 1, f"invalid YAML: {exc}")) from None
    if root is None:
        raise YamlSourceError(Located((), 1, 1, "the file is empty"))
    document = YamlDocument(data=None)
    document.data = _Builder(document).build(root, ())
    return document


class _Builder:
    def __init__(self, document: YamlDocument) -> None:
        self._doc = document
        self._seen: set[int] = set()
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: DocPath) -> object:
        self._doc.values[path] = _mark(node)
        if id(node) in self._seen:
            self._problem(path, node, "aliases (*name) are not allowed; write the value out")
            return None
        self._seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: DocPath) -> dict[str, object]:
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._problem(path, key_node, "merge keys (<<) are not allowed; write keys out")
                continue
            key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self._problem(path, key_node, "keys must be plain text")
                continue
            child = (*path, key)
            if key in result:
                first_line = self._doc.keys[child][0]
                self._problem(
                    child, key_node, f"duplicate key {key!r} (first defined on line {first_line})"
                )
                continue
            self._doc.keys[child] = _mark(key_node)
            result[key] = self.build(value_node, child)
        return result

    def _scalar(self, node: yaml.Node) -> object:
        if node.tag == _BOOL_TAG and str(node.value).lower() not in _YAML12_BOOLS:
            return str(node.value)  # YAML 1.1's yes/no/on/off are text in YAML 1.2
        if node.tag == _STR_TAG or not isinstance(node, yaml.ScalarNode):
            return str(node.value)
        return self._constructor.construct_object(node, deep=True)

    def _problem(self, path: DocPath, node: yaml.Node, message: str) -> None:
        line, column = _mark(node)
        self._doc.problems.append(Located(path, line, column, message))


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
