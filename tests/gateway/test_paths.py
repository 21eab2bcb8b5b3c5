"""Path normalisation: one decoding, refusals for anything ambiguous."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.gateway.paths import BadPathError, _checked, split_target


@pytest.mark.parametrize(
    ("target", "segments", "query"),
    [
        ("/", (), ""),
        ("/orders", ("orders",), ""),
        ("/orders/42?x=1&y=2", ("orders", "42"), "x=1&y=2"),
        ("/a%20b/%C3%A9", ("a b", "é"), ""),
    ],
)
def test_good_targets_split_into_decoded_segments(
    target: str, segments: tuple[str, ...], query: str
) -> None:
    """Segments are percent-decoded once; the query stays raw."""
    assert split_target(target) == (segments, query)


@given(st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=5))
def test_decoded_segments_never_contain_slashes_or_dot_segments(parts: list[str]) -> None:
    """Whatever the encoding, a routed segment is never '/', '.', '..' or empty."""
    from urllib.parse import quote

    target = "/" + "/".join(quote(p, safe="") for p in parts)
    try:
        segments, _ = split_target(target)
    except BadPathError:
        return
    for segment in segments:
        assert "/" not in segment
        assert segment not in {"", ".", ".."}


@given(st.text(alphabet=st.sampled_from("ab.%2e5c;/~!:@é\x00 "), max_size=14))
def test_the_plain_path_shortcut_answers_as_every_check_does(tail: str) -> None:
    """A path split without the checks is split as the checks would split it."""
    path = "/" + tail
    try:
        expected: tuple[str, ...] | str = _checked(path)
    except BadPathError as exc:
        expected = str(exc)
    try:
        got: tuple[str, ...] | str = split_target(path)[0]
    except BadPathError as exc:
        got = str(exc)
    assert got == expected
