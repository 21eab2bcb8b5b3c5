"""Inclusion and consistency proofs from the stored tree: a few look-ups each.

A proof is a list of ranges (:mod:`interlock.proofs.rfc9162`); each range is
the fold of at most ~63 perfect subtrees, whose hashes are stored (leaves in
``audit_leaves``, larger ones in ``audit_nodes``). One query per proof
fetches them all, so a proof costs O(log n) rows at any log size. Hashes
are cached per reader, which makes exporting many proofs of one tree cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from sqlalchemy import Connection

from interlock.audit.errors import AuditError
from interlock.audit.storage import fetch_pieces
from interlock.proofs.errors import ProofError
from interlock.proofs.rfc9162 import (
    Piece,
    Range,
    aligned_pieces,
    consistency_path,
    fold,
    inclusion_path,
)

__all__ = ["ProofReader"]

_CACHE_LIMIT: Final = 200_000


class ProofReader:
    """Builds proofs over one connection to the audit database."""

    def __init__(self, connection: Connection, size: int) -> None:
        """Proofs for trees of at most ``size`` entries (the log's current size)."""
        self._connection = connection
        self._size = size
        self._cache: dict[Piece, bytes] = {}

    def _check(self, size: int) -> None:
        if not 0 < size <= self._size:
            raise ProofError(f"the log has no tree of size {size} (it holds {self._size})")

    def prefetch(self, ranges: Iterable[Range]) -> None:
        """Fetch the hashes ``ranges`` need in one query."""
        wanted = {p for a, b in ranges for p in aligned_pieces(a, b) if p not in self._cache}
        if not wanted:
            return
        if len(self._cache) > _CACHE_LIMIT:
            self._cache.clear()
        found = fetch_pieces(self._connection, wanted)
        missing = wanted - found.keys()
        if missing:
            level, index = min(missing)
            raise AuditError(
                f"the audit database lacks the tree node at level {level}, index {index}; "
                "run `interlock audit verify`"
            )
        self._cache.update(found)

    def hashes(self, ranges: Sequence[Range]) -> list[bytes]:
        """The subtree hash of each range."""
        self.prefetch(ranges)
        return [fold([self._cache[p] for p in aligned_pieces(a, b)]) for a, b in ranges]

    def root(self, size: int) -> bytes:
        """The tree hash of the first ``size`` entries."""
        self._check(size)
        return self.hashes([(0, size)])[0]

    def leaf(self, index: int) -> bytes:
        """The leaf hash of entry ``index``."""
        self._check(index + 1)
        return self.hashes([(index, index + 1)])[0]

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1: the proof of entry ``index`` in the tree of ``size``."""
        self._check(size)
        return self.hashes(inclusion_path(index, size))

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1: the proof that tree ``old_size`` is a prefix of ``new_size``."""
        self._check(new_size)
        return self.hashes(consistency_path(old_size, new_size))
