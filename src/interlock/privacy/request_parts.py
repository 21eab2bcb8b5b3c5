"""The parts of data-subject requests that the service, the worker and closing share.

The store's two tables, the associated data that binds each sealed value to
its row, the interfaces of the lineage index the requests need (the real
ones are :mod:`interlock.privacy.lineage`'s ``SubjectHasher`` and
``LineageIndex``), and :class:`RequestParts`, what every step works with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from sqlalchemy import Engine

from interlock.audit.sink import AuditSink
from interlock.clock import Clock
from interlock.crypto import Keyring
from interlock.privacy.tables import RequestRow, RequestSystemRow
from interlock.store.base import table_of

__all__ = [
    "REQUESTS",
    "SYSTEMS",
    "LineageLookup",
    "RequestParts",
    "SubjectDigest",
    "answer_aad",
    "request_aad",
]

REQUESTS: Final = table_of(RequestRow)
SYSTEMS: Final = table_of(RequestSystemRow)


class SubjectDigest(Protocol):
    """The lineage key's keyed hash (``interlock.privacy.lineage.SubjectHasher``)."""

    def digest(self, kind: str, normalised: str) -> bytes:
        """The 32-byte keyed hash of ``kind`` and the normalised identifier."""
        ...


class LineageLookup(Protocol):
    """What requests need of ``interlock.privacy.lineage.LineageIndex``."""

    def find(self, subject: bytes) -> Sequence[Any]:
        """The subject's lineage records (with ``receiver``, ``integration``, ``audit_index``)."""
        ...

    def erase(self, subject: bytes, *, keep: Iterable[str] = ()) -> int:
        """Delete the subject's rows but those naming a system in ``keep``; how many went."""
        ...


def request_aad(request_id: str) -> bytes:
    """What a request's sealed identifier and corrections are bound to."""
    return f"interlock:privacy:request:{request_id}".encode()


def answer_aad(request_id: str, system: str) -> bytes:
    """What a system's sealed answer is bound to."""
    return f"interlock:privacy:answer:{request_id}:{system}".encode()


@dataclass(frozen=True)
class RequestParts:
    """The store, keys, audit sink, lineage and clock every step of a request uses.

    ``audit_engine``: the audit log's database, for the receipt's inclusion
    proofs (``None``: closed requests get no receipt).
    """

    engine: Engine = field(repr=False)
    keyring: Keyring = field(repr=False)
    audit: AuditSink = field(repr=False)
    lineage: LineageLookup = field(repr=False)
    clock: Clock
    audit_engine: Engine | None = field(repr=False)
