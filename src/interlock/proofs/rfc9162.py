"""Merkle tree hashing and proofs of RFC 9162 (Certificate Transparency 2.0) §2.1.

The tree's shape depends only on its size, so a proof is first a list of
*ranges* of leaves whose subtree hashes it carries (:func:`inclusion_path`,
:func:`consistency_path`); whoever holds the hashes (a list in memory, or the
stored nodes of the audit database) resolves each range by folding the
aligned perfect subtrees it is made of (:func:`aligned_pieces`, :func:`fold`).

Verification follows the algorithms of §2.1.3.2 and §2.1.4.2 to the letter
and is strict: every proof element must be consumed, a proof with extra or
missing elements is refused, every hash must be 32 bytes, and there is no
consistency proof from the empty tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

from interlock.proofs.errors import ProofError

__all__ = [
    "HASH_SIZE",
    "MAX_PROOF_LENGTH",
    "Piece",
    "Range",
    "aligned_pieces",
    "consistency_path",
    "empty_root",
    "fold",
    "inclusion_path",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root_from_inclusion",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
#: A tree of at most 2^63 leaves needs at most 63 (inclusion) or 2*63 (consistency) hashes.
MAX_PROOF_LENGTH: Final = 128
_LEAF: Final = b"\x00"
_NODE: Final = b"\x01"
_sha256 = hashlib.sha256
# SHA-256 states that have taken the prefix: each hash starts from a copy of one.
# Copying a state costs less than OpenSSL 3 setting up a new one, and the data is
# not copied to prepend a byte; these are never updated, so copies from any thread are safe.
_LEAF_STATE: Final = hashlib.sha256(_LEAF)
_NODE_STATE: Final = hashlib.sha256(_NODE)

Range = tuple[int, int]  # leaves [start, end)
Piece = tuple[
    int, int
]  # a perfect subtree: (level, index) covers [index << level, (index+1) << level)


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x00 || data)``."""
    state = _LEAF_STATE.copy()
    state.update(data)
    return state.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x01 || left || right)``."""
    state = _NODE_STATE.copy()
    state.update(left)
    state.update(right)
    return state.digest()


def empty_root() -> bytes:
    """RFC 9162 §2.1.1: the hash of the empty tree is ``SHA-256()``."""
    return _sha256(b"").digest()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` > 1), RFC 9162 §2.1.1."""
    return 1 << ((size - 1).bit_length() - 1)


def aligned_pieces(start: int, end: int) -> list[Piece]:
    """The perfect subtrees, left to right, that make up ``[start, end)``.

    For a range that is a node of the tree (every range a proof names), the
    first piece is the largest and the rest decrease, so :func:`fold` gives its hash.
    """
    pieces: list[Piece] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else 63
        while (1 << level) > end - start:
            level -= 1
        pieces.append((level, start >> level))
        start += 1 << level
    return pieces


def fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of adjacent perfect subtrees of decreasing size: a right fold of node hashes."""
    if not hashes:
        return empty_root()
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """The leaf hash of each entry (:func:`leaf_hash`, in bulk, its calls bound once).

    Measured over 10^6 entries of 424 bytes: 0.58 s, against 0.65 s for
    ``SHA-256`` of each entry with the prefix concatenated (benchmarks/audit).
    """
    start = _LEAF_STATE.copy
    hashes: list[bytes] = []
    append = hashes.append
    for entry in entries:
        state = start()
        state.update(entry)
        append(state.digest())
    return hashes


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1: the Merkle tree hash of the leaves whose hashes are given.

    Level by level: pair neighbours, carry a lone last node up unchanged.
    This equals §2.1.1's split at the largest power of two (the lone node is
    the right edge, which the recursive definition also hashes last).
    """
    level = list(leaf_hashes)
    if not level:
        return empty_root()
    start = _NODE_STATE.copy
    while len(level) > 1:
        paired: list[bytes] = []
        append = paired.append
        # zip stops at the shorter slice: an odd level's last node is carried up below.
        for left, right in zip(level[::2], level[1::2], strict=False):
            state = start()
            state.update(left)
            state.update(right)
            append(state.digest())
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_path(index: int, size: int) -> list[Range]:
    """RFC 9162 §2.1.3.1: the ranges whose hashes prove leaf ``index`` in a tree of ``size``.

    Bottom-up, as the verifier consumes them.
    """
    if not 0 <= index < size:
        raise ProofError(f"no entry {index} in a tree of size {size}")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_path(old_size: int, new_size: int) -> list[Range]:
    """RFC 9162 §2.1.4.1: the ranges proving a tree of ``old_size`` is a prefix of ``new_size``.

    Bottom-up. Empty when the sizes are equal; refused from the empty tree.
    """
    if not 0 < old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    path: list[Range] = []
    start, end, m, complete = 0, new_size, old_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        path.append((start, end))
    path.reverse()
    return path


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def _check_proof(proof: Sequence[bytes]) -> None:
    if len(proof) > MAX_PROOF_LENGTH:
        raise ProofError("the proof is too long")
    for position, element in enumerate(proof):
        _check_hash(element, f"proof element {position}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root that ``proof`` implies for ``leaf`` at ``index``."""
    if not 0 <= index < size:
        raise ProofError(f"entry index {index} is outside a tree of size {size}")
    _check_hash(leaf, "the leaf hash")
    _check_proof(proof)
    fn, sn, result = index, size - 1, leaf
    for element in proof:
        if sn == 0:
            raise ProofError("the inclusion proof has more elements than the tree needs")
        if fn & 1 or fn == sn:
            result = node_hash(element, result)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, element)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion proof has fewer elements than the tree needs")
    return result


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows ``leaf`` at ``index`` under ``root``."""
    _check_hash(root, "the root hash")
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError("the inclusion proof does not lead to the root")


def _trivially_consistent(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check the arguments; ``True`` when equal sizes settle it without hashing."""
    _check_hash(old_root, "the old root hash")
    _check_hash(new_root, "the new root hash")
    _check_proof(proof)
    if old_size <= 0:
        raise ProofError("there is no consistency proof from the empty tree")
    if old_size > new_size:
        raise ProofError(f"the old size {old_size} is larger than the new size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("two tree heads of the same size have different roots")
        return True
    if not proof:
        raise ProofError("the consistency proof is empty")
    return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: raise :class:`ProofError` unless ``proof`` links the two tree heads."""
    if _trivially_consistent(old_size, new_size, old_root, new_root, proof):
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = path[0]
    for element in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof has more elements than the trees need")
        if fn & 1 or fn == sn:
            first, second = node_hash(element, first), node_hash(element, second)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = node_hash(second, element)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof has fewer elements than the trees need")
    if first != old_root or second != new_root:
        raise ProofError("the consistency proof does not lead to the two roots")
