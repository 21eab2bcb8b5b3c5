"""Safe YAML reading: positions, duplicate keys, aliases, size and encoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.config.yaml_source import MAX_BYTES, MAX_DEPTH, YamlSourceError, read_yaml


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


def test_positions_of_keys_and_values_are_recorded(tmp_path: Path) -> None:
    """Every key and value knows its 1-based line and column."""
    doc = read_yaml(_write(tmp_path, "a:\n  b: [1, {c: x}]\n"))
    assert doc.data == {"a": {"b": [1, {"c": "x"}]}}
    assert doc.keys[("a", "b")] == (2, 3)
    assert doc.values[("a", "b")] == (2, 6)
    assert doc.values[("a", "b", 1, "c")] == (2, 14)
    assert doc.position(("a", "b", 7, "missing")) == (2, 6)


def test_duplicate_keys_are_reported_with_both_lines(tmp_path: Path) -> None:
    """PyYAML would keep the last value silently; we refuse and keep the first."""
    doc = read_yaml(_write(tmp_path, "a: 1\nb: 2\na: 3\n"))
    assert doc.data == {"a": 1, "b": 2}
    (problem,) = doc.problems
    assert (problem.line, problem.column) == (3, 1)
    assert "duplicate key 'a' (first defined on line 1)" in problem.message


def test_aliases_and_merge_keys_are_refused(tmp_path: Path) -> None:
    """No value may silently come from elsewhere (or expand exponentially)."""
    doc = read_yaml(_write(tmp_path, "base: &b {x: 1}\ncopy: *b\nmerged:\n  <<: *b\n"))
    messages = [p.message for p in doc.problems]
    assert any("aliases" in m for m in messages)
    assert any("merge keys" in m for m in messages)


def test_billion_laughs_does_not_expand(tmp_path: Path) -> None:
    """Nested aliases are refused at the first reuse, without building the expansion."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    doc = read_yaml(_write(tmp_path, "\n".join(lines) + "\n"))
    assert doc.problems
    assert len(str(doc.data)) < 10_000


def test_yaml_11_booleans_stay_text(tmp_path: Path) -> None:
    """The Norway problem: NO stays 'NO'; only true/false are booleans."""
    doc = read_yaml(_write(tmp_path, "country: NO\nflag: yes\nreal: true\n"))
    assert doc.data == {"country": "NO", "flag": "yes", "real": True}


def test_non_string_keys_are_refused(tmp_path: Path) -> None:
    """Keys are names; a number or list as key is a located problem."""
    doc = read_yaml(_write(tmp_path, "1: a\n? [x]\n: b\n"))
    assert [p.line for p in doc.problems] == [1, 2]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (b"a: [1, 2\nb: 3\n", 2, "invalid YAML"),
        (b"", 1, "empty"),
        (b"a: 1\n---\nb: 2\n", 2, "invalid YAML"),
        (b"a: \xff\n", 1, "not UTF-8"),
    ],
)
def test_unreadable_files_are_one_located_error(
    tmp_path: Path, content: bytes, line: int, message: str
) -> None:
    """Syntax errors, empty files, several documents and bad encodings are located."""
    path = tmp_path / "m.yaml"
    path.write_bytes(content)
    with pytest.raises(YamlSourceError) as caught:
        read_yaml(path)
    assert caught.value.problem.line == line
    assert message in caught.value.problem.message


def test_oversized_and_missing_files_are_refused(tmp_path: Path) -> None:
    """A size cap protects the parser; a missing file says so."""
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(YamlSourceError, match="larger than"):
        read_yaml(big)
    with pytest.raises(YamlSourceError, match="cannot read"):
        read_yaml(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: !!python/object:os.system ls\n", "tag !!python/object:os.system is not allowed"),
        ("a: !custom x\n", "tag !custom is not allowed"),
        ("a: !!binary aGVsbG8=\n", "tag !!binary is not allowed"),
        ("a: !!set {x, y}\n", "tag !!set is not allowed"),
        ("a: !!omap [x: 1]\n", "tag !!omap is not allowed"),
        ("a: !!int twelve\n", "'twelve' is not a valid tag !!int"),
    ],
)
def test_explicit_tags_are_refused_at_the_value(tmp_path: Path, text: str, fragment: str) -> None:
    """Only plain YAML types are read; nothing is constructed from a tag."""
    doc = read_yaml(_write(tmp_path, text))
    (problem,) = doc.problems
    assert (problem.path, problem.line, problem.column) == (("a",), 1, 4)
    assert fragment in problem.message
    assert doc.data == {"a": None}


def test_dates_stay_text(tmp_path: Path) -> None:
    """YAML 1.1 timestamps are read as the text written (YAML 1.2 core schema)."""
    doc = read_yaml(_write(tmp_path, "since: 2024-01-31\nn: 3\nx: 1.5\nz: ~\n"))
    assert doc.data == {"since": "2024-01-31", "n": 3, "x": 1.5, "z": None}


def test_nesting_deeper_than_the_cap_is_refused_where_it_starts(tmp_path: Path) -> None:
    """Deep nesting is refused before the recursive composer runs."""
    text = "a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n"
    with pytest.raises(YamlSourceError, match="nested deeper than") as caught:
        read_yaml(_write(tmp_path, text))
    problem = caught.value.problem
    assert (problem.line, problem.column) == (1, 3 + MAX_DEPTH)
    nested = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert read_yaml(_write(tmp_path, nested)).problems == []


@pytest.mark.parametrize("character", ["\x00", "\x0c", "\x1b", "\x7f"])
def test_a_control_character_is_one_line_at_its_place(tmp_path: Path, character: str) -> None:
    """PyYAML's reader error (no mark, a position) becomes one located line."""
    text = f"a: 1\nb: 2\nc: 3\nd: x{character}y\n"
    with pytest.raises(YamlSourceError) as caught:
        read_yaml(_write(tmp_path, text))
    problem = caught.value.problem
    assert (problem.line, problem.column) == (4, 5)
    assert "\n" not in problem.message
    assert "control characters are not allowed" in problem.message
    assert "position" not in problem.message
