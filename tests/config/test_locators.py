"""Compiled locators: RFC 6901 pointers and RFC 9535 JSONPaths, ElementTree paths."""

from __future__ import annotations

import pytest

from interlock.config.locators import check_xml_path, compile_json


def test_a_pointer_selects_one_value_by_rfc_6901() -> None:
    """~1 is '/', ~0 is '~'; an array index or a member named like one."""
    assert compile_json("/a~1b/c~0d").find({"a/b": {"c~d": "x"}}) == ["x"]
    assert compile_json("/items/1/email").find({"items": [{}, {"email": "e"}]}) == ["e"]
    assert compile_json("/items/1").find({"items": {"1": "member"}}) == ["member"]
    assert compile_json("/missing/email").find({"other": 1}) == []
    assert compile_json("/items/5").find({"items": [1]}) == []


def test_a_jsonpath_selects_every_match_in_document_order() -> None:
    """Wildcards, descendants and filters are RFC 9535's."""
    document = {"lines": [{"email": "a"}, {"email": "b", "vip": True}], "email": "c"}
    assert compile_json("$.lines[*].email").find(document) == ["a", "b"]
    assert sorted(map(str, compile_json("$..email").find(document))) == ["a", "b", "c"]
    assert compile_json("$.lines[?@.vip].email").find(document) == ["b"]


def test_only_objects_and_arrays_are_looked_into() -> None:
    """A JSON string body that holds JSON text is a string, not a document."""
    assert compile_json("$.email").find('{"email": "x@example.com"}') == []
    assert compile_json("/email").find('{"email": "x@example.com"}') == []
    assert compile_json("$.email").find(None) == []


def test_non_standard_pointer_key_selectors_are_refused() -> None:
    """python-jsonpath would give a missing member's key name: not RFC 6901."""
    with pytest.raises(ValueError, match="'#' or '~'"):
        compile_json("/#email")
    with pytest.raises(ValueError, match="'#' or '~'"):
        compile_json("/~0email")


@pytest.mark.parametrize("path", ["./customer/email", "customer/email", ".//email", "{urn:x}a/b"])
def test_relative_elementtree_paths_pass(path: str) -> None:
    """What ElementTree findall accepts from the root element."""
    check_xml_path(path)


@pytest.mark.parametrize("path", ["/order/email", "//email", "a[", "a[1"])
def test_absolute_or_broken_paths_are_refused(path: str) -> None:
    """Absolute paths and unclosed predicates."""
    with pytest.raises(ValueError, match=r"ElementTree path|absolute"):
        check_xml_path(path)
