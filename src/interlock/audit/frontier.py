"""The right edge of a growing Merkle tree: what an appender must remember.

A tree of ``size`` leaves is the perfect subtrees of :func:`aligned_pieces`
``(0, size)``, one per set bit of ``size``. Appending a leaf merges equal-sized
subtrees like a binary counter; each merge completes a node that never changes
again, which the audit store keeps so that proofs cost a few look-ups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from interlock.proofs.rfc9162 import aligned_pieces, fold, node_hash

__all__ = ["Frontier", "Node"]


@dataclass(frozen=True)
class Node:
    """A completed perfect subtree (``level`` >= 1) over leaves ``index << level`` onwards."""

    level: int
    index: int
    hash: bytes


class Frontier:
    """The perfect subtrees of a tree's right edge; appends leaves, gives the root."""

    __slots__ = ("_hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """A frontier of a tree of ``size`` given the hashes of ``aligned_pieces(0, size)``."""
        if len(hashes) != size.bit_count():
            raise ValueError("a frontier needs one hash per set bit of the size")
        self.size = size
        self._hashes = list(hashes)  # largest subtree first

    def append(self, leaf: bytes) -> list[Node]:
        """Add a leaf hash; returns the nodes it completes (lowest level first)."""
        completed: list[Node] = []
        current, level, index = leaf, 0, self.size
        while index & 1:
            current = node_hash(self._hashes.pop(), current)
            level, index = level + 1, index >> 1
            completed.append(Node(level, index, current))
        self._hashes.append(current)
        self.size += 1
        return completed

    def extend(self, leaves: Sequence[bytes]) -> list[tuple[int, int, bytes]]:
        """Add many leaf hashes; the ``(level, index, hash)`` of every node they complete.

        The same nodes as :meth:`append` leaf by leaf, as plain tuples (the rows
        the store inserts), in one loop without a ``Node`` object per node.
        """
        completed: list[tuple[int, int, bytes]] = []
        hashes, size = self._hashes, self.size
        add = completed.append
        for leaf in leaves:
            current, level, index = leaf, 0, size
            while index & 1:
                current = node_hash(hashes.pop(), current)
                level, index = level + 1, index >> 1
                add((level, index, current))
            hashes.append(current)
            size += 1
        self.size = size
        return completed

    def root(self) -> bytes:
        """RFC 9162 §2.1.1: the tree hash of the leaves so far."""
        return fold(self._hashes)

    def copy(self) -> Frontier:
        """An independent copy (for a batch that may be rolled back)."""
        return Frontier(self.size, self._hashes)

    @staticmethod
    def pieces(size: int) -> list[tuple[int, int]]:
        """The ``(level, index)`` of the subtrees a frontier of ``size`` holds."""
        return aligned_pieces(0, size)
