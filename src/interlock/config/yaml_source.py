"""Read YAML safely and remember where every key and value stood.

PyYAML's safe loader (libyaml's when installed) composes the node graph; no
Python object is constructed from tags. We then build plain data from the nodes
ourselves so that we can:

* record the line and column of every key and value, for located errors;
* refuse duplicate keys (PyYAML silently keeps the last one: a reviewer sees
  the first, Interlock would use the second);
* refuse aliases and merge keys (exponential "billion laughs" expansion, and
  values that silently come from elsewhere in the file);
* refuse explicit tags other than the plain YAML types (``!!binary``, ``!!set``,
  ``!custom`` ...): a manifest holds text, numbers, booleans, lists and mappings;
* refuse non-string keys, files over a size cap and nesting deeper than a cap
  (the composer recurses once per level);
* read ``yes``/``no``/``on``/``off`` and dates as strings, as YAML 1.2's core
  schema does, so that a country code ``NO`` stays Norway instead of ``False``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import yaml

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "DocPath",
    "Located",
    "YamlDocument",
    "YamlSourceError",
    "one_line",
    "parse_yaml",
    "read_yaml",
]

MAX_BYTES: Final = 4 * 1024 * 1024
MAX_DEPTH: Final = 64
# libyaml is faster and behaves the same; the pure-Python loader is the fallback.
_LOADER: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG: Final = "tag:yaml.org,2002:"
_TEXT_TAGS: Final = frozenset({f"{_TAG}str", f"{_TAG}timestamp", f"{_TAG}value"})
_CONSTRUCTED_TAGS: Final = frozenset({f"{_TAG}null", f"{_TAG}int", f"{_TAG}float"})
_BOOL_TAG: Final = f"{_TAG}bool"
_MERGE_TAG: Final = f"{_TAG}merge"
_MAP_TAG: Final = f"{_TAG}map"
_SEQ_TAG: Final = f"{_TAG}seq"
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
    sha256: str = ""  # of the file's bytes as read

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
    raw = _read_bytes(path)
    return _document(_utf8(raw), raw)


def parse_yaml(text: str) -> YamlDocument:
    """:func:`read_yaml` of a text held elsewhere (a stored manifest version), same rules."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BYTES:
        raise YamlSourceError(Located((), 1, 1, f"text is larger than {MAX_BYTES} bytes"))
    return _document(_utf8(raw), raw)


def _document(text: str, raw: bytes) -> YamlDocument:
    try:
        _check_depth(text)
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        line, column = _position(exc.problem_mark or exc.context_mark)
        reason = exc.problem or exc.context or "invalid YAML"
        raise YamlSourceError(Located((), line, column, f"invalid YAML: {reason}")) from None
    except yaml.reader.ReaderError as exc:  # no mark: a position in the text
        line, column = _offset_position(text, raw, exc)
        reason = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        raise YamlSourceError(Located((), line, column, f"invalid YAML: {reason}")) from None
    except yaml.YAMLError as exc:
        raise YamlSourceError(Located((), 1, 1, one_line(f"invalid YAML: {exc}"))) from None
    if root is None:
        raise YamlSourceError(Located((), 1, 1, "the file is empty"))
    document = YamlDocument(data=None, sha256=hashlib.sha256(raw).hexdigest())
    document.data = _Builder(document).build(root, ())
    return document


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise YamlSourceError(Located((), 1, 1, f"cannot read file: {reason}")) from None
    if len(raw) > MAX_BYTES:
        raise YamlSourceError(Located((), 1, 1, f"file is larger than {MAX_BYTES} bytes"))
    return raw


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSourceError(
            Located((), 1, 1, f"not UTF-8 (byte {exc.start}); save the file as UTF-8")
        ) from None


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the event stream, before the recursive composer runs."""
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line, column = _position(event.start_mark)
                message = f"nested deeper than {MAX_DEPTH} levels"
                raise YamlSourceError(Located((), line, column, message))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _Builder:
    def __init__(self, document: YamlDocument) -> None:
        self._doc = document
        self._seen: set[int] = set()
        # Only used for null, int and float scalars (SafeConstructor's own rules).
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: DocPath) -> object:
        self._doc.values[path] = _mark(node)
        if id(node) in self._seen:
            self._problem(path, node, "aliases (*name) are not allowed; write the value out")
            return None
        self._seen.add(id(node))
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG:
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self._problem(path, node, f"{_tag_name(node)} is not allowed; use a plain list or mapping")
        return None

    def _mapping(self, node: yaml.MappingNode, path: DocPath) -> dict[str, object]:
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._problem(path, key_node, "merge keys (<<) are not allowed; write keys out")
                continue
            if not _is_text_key(key_node):
                self._problem(path, key_node, "keys must be plain text")
                continue
            key = str(key_node.value)
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

    def _scalar(self, node: yaml.ScalarNode, path: DocPath) -> object:
        if node.tag in _TEXT_TAGS or _is_yaml11_bool(node):
            return str(node.value)
        if node.tag in _CONSTRUCTED_TAGS or node.tag == _BOOL_TAG:
            try:
                return self._constructor.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError):
                self._problem(path, node, f"{node.value!r} is not a valid {_tag_name(node)}")
                return None
        self._problem(path, node, f"{_tag_name(node)} is not allowed; write plain text or numbers")
        return None

    def _problem(self, path: DocPath, node: yaml.Node, message: str) -> None:
        line, column = _mark(node)
        self._doc.problems.append(Located(path, line, column, message))


def _is_text_key(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and (node.tag in _TEXT_TAGS or _is_yaml11_bool(node))


def _is_yaml11_bool(node: yaml.Node) -> bool:
    """``yes``/``no``/``on``/``off``: booleans in YAML 1.1, text in YAML 1.2."""
    return node.tag == _BOOL_TAG and str(node.value).lower() not in _YAML12_BOOLS


def _tag_name(node: yaml.Node) -> str:
    tag = str(node.tag)
    return f"tag !!{tag.removeprefix(_TAG)}" if tag.startswith(_TAG) else f"tag {tag}"


def _mark(node: yaml.Node) -> tuple[int, int]:
    return _position(node.start_mark)


def one_line(text: str) -> str:
    """``text`` with every unprintable character escaped (``\\n``, ``\\x1b``, ``\\u2028``).

    A diagnostic is one line: a value with a line break (or a terminal escape)
    would otherwise add lines of its author's choosing to the output and CI logs.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _ESCAPES.get(c, _escape(c)) for c in text)


_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(character: str) -> str:
    code = ord(character)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def _offset_position(text: str, raw: bytes, exc: yaml.reader.ReaderError) -> tuple[int, int]:
    """1-based (line, column) of a reader error's position: a character index (the
    Python reader) or, where that does not hold the character, a UTF-8 byte offset."""
    index = exc.position
    if not (0 <= index < len(text) and ord(text[index]) == exc.character):
        index = len(raw[:index].decode("utf-8", "ignore"))
    start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - start + 1


def _position(mark: object) -> tuple[int, int]:
    """1-based (line, column) of a PyYAML or libyaml mark; (1, 1) when there is none."""
    line, column = getattr(mark, "line", None), getattr(mark, "column", None)
    if isinstance(line, int) and isinstance(column, int):
        return line + 1, column + 1
    return 1, 1
