"""RFC 9162 hashing and proofs against the RFC 6962 vectors, plus exhaustive small trees."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.audit.frontier import Frontier
from interlock.proofs.errors import ProofError
from interlock.proofs.rfc9162 import (
    aligned_pieces,
    consistency_path,
    empty_root,
    fold,
    inclusion_path,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from tests.crypto.vectors import SHARED_VECTORS, nonempty, vector_file

VECTORS = SHARED_VECTORS / "rfc6962"


def _vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(vector_file(VECTORS / "vectors.json").read_text())
    for key in ("leaves", "roots", "inclusion_proofs"):
        nonempty(data.get(key, []), f"RFC 6962 {key}")
    return data


def _inclusion_cases() -> list[Path]:
    folder = VECTORS / "inclusion"
    return sorted(folder.rglob("*.json")) if folder.is_dir() else []


def _b64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def _hashes(leaves: list[bytes]) -> list[bytes]:
    return [leaf_hash(leaf) for leaf in leaves]


def _range_hash(hashes: list[bytes], start: int, end: int) -> bytes:
    return fold([root_of(hashes[i << lv : (i + 1) << lv]) for lv, i in aligned_pieces(start, end)])


def _inclusion(hashes: list[bytes], index: int, size: int) -> list[bytes]:
    return [_range_hash(hashes, a, b) for a, b in inclusion_path(index, size)]


def _consistency(hashes: list[bytes], old: int, new: int) -> list[bytes]:
    return [_range_hash(hashes, a, b) for a, b in consistency_path(old, new)]


def test_tree_heads_for_every_prefix_match_the_vectors() -> None:
    """roots[n] is the hash of the first n leaves, n = 0 .. 8, by both ways of computing it."""
    data = _vectors()
    leaves = [bytes.fromhex(x) for x in data["leaves"]]
    hashes = _hashes(leaves)
    assert root_of([]) == empty_root() == bytes.fromhex(data["roots"][0])
    for size, expected in enumerate(data["roots"]):
        assert root_of(hashes[:size]).hex() == expected
        frontier = Frontier()
        for value in hashes[:size]:
            frontier.append(value)
        assert frontier.root().hex() == expected


def test_inclusion_proofs_match_the_vectors_and_verify() -> None:
    """Our generated audit paths equal the published ones, and they verify."""
    data = _vectors()
    hashes = _hashes([bytes.fromhex(x) for x in data["leaves"]])
    for case in data["inclusion_proofs"]:
        index, size = case["leaf_index"], case["tree_size"]
        proof = _inclusion(hashes, index, size)
        assert [p.hex() for p in proof] == case["proof"]
        verify_inclusion(index, size, hashes[index], proof, root_of(hashes[:size]))


def _case_id(path: object) -> str:
    # pytest also asks for the id of its placeholder when the folder is absent.
    return str(path.relative_to(VECTORS)) if isinstance(path, Path) else str(path)


@pytest.mark.parametrize("path", _inclusion_cases(), ids=_case_id)
def test_inclusion_case(path: Path) -> None:
    """Each transparency-dev inclusion case: happy paths verify, every wantErr case is refused."""
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), proof, _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


def test_inclusion_case_folder_is_present() -> None:
    """The inclusion cases are found (otherwise the parametrised test would silently run none)."""
    vector_file(VECTORS / "inclusion")
    assert len(_inclusion_cases()) > 50


def test_every_inclusion_and_consistency_proof_of_small_trees_verifies() -> None:
    """Exhaustive for sizes 1..33: every index, every pair of sizes."""
    hashes = _hashes([i.to_bytes(2, "big") for i in range(33)])
    roots = [root_of(hashes[:n]) for n in range(34)]
    for size in range(1, 34):
        for index in range(size):
            verify_inclusion(
                index, size, hashes[index], _inclusion(hashes, index, size), roots[size]
            )
        for old in range(1, size + 1):
            verify_consistency(old, size, roots[old], roots[size], _consistency(hashes, old, size))


def test_consistency_proofs_are_refused_when_altered() -> None:
    """Every proof element is used: dropping, adding, flipping any one of them is refused."""
    hashes = _hashes([i.to_bytes(2, "big") for i in range(20)])
    roots = [root_of(hashes[:n]) for n in range(21)]
    for old, new in [(1, 2), (3, 7), (4, 8), (6, 20), (13, 19), (16, 20), (1, 20)]:
        proof = _consistency(hashes, old, new)
        variants = [proof[:-1], proof[1:], [*proof, proof[-1]], [roots[old], *proof]]
        for position in range(len(proof)):
            flipped = bytearray(proof[position])
            flipped[0] ^= 1
            variants.append([*proof[:position], bytes(flipped), *proof[position + 1 :]])
        for variant in variants:
            with pytest.raises(ProofError):
                verify_consistency(old, new, roots[old], roots[new], variant)
        with pytest.raises(ProofError):
            verify_consistency(old, new, roots[old - 1], roots[new], proof)
        with pytest.raises(ProofError):
            verify_consistency(old, new, roots[old], roots[new - 1], proof)


def test_no_consistency_proof_from_the_empty_tree() -> None:
    """Size 0 proves nothing: refused even with an empty proof and the right roots."""
    hashes = _hashes([b"a", b"b"])
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 2, empty_root(), root_of(hashes), [])
    with pytest.raises(ProofError):
        consistency_path(0, 2)


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    """A proof between one size and itself is empty; any element is refused."""
    root = root_of(_hashes([b"a", b"b", b"c"]))
    verify_consistency(3, 3, root, root, [])
    with pytest.raises(ProofError):
        verify_consistency(3, 3, root, root, [root])
    with pytest.raises(ProofError):
        verify_consistency(3, 3, root, empty_root(), [])


def test_a_shrinking_tree_and_wrong_sized_hashes_are_refused() -> None:
    """The old size cannot exceed the new one; hashes must be 32 bytes."""
    root = root_of(_hashes([b"a"]))
    with pytest.raises(ProofError):
        verify_consistency(2, 1, root, root, [root])
    with pytest.raises(ProofError):
        verify_inclusion(0, 1, root[:31], [], root)
    with pytest.raises(ProofError):
        verify_inclusion(0, 2, root, [b"x" * 33], root)


@given(st.integers(1, 5000), st.data())
def test_frontier_root_equals_recursive_root(size: int, data: st.DataObject) -> None:
    """The appender's root and the §2.1.1 definition agree; proofs from any index verify."""
    hashes = _hashes([i.to_bytes(4, "big") for i in range(size)])
    frontier = Frontier()
    for value in hashes:
        frontier.append(value)
    root = root_of(hashes)
    assert frontier.root() == root
    index = data.draw(st.integers(0, size - 1))
    verify_inclusion(index, size, hashes[index], _inclusion(hashes, index, size), root)
    old = data.draw(st.integers(1, size))
    verify_consistency(old, size, root_of(hashes[:old]), root, _consistency(hashes, old, size))
