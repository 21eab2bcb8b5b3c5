"""Who may read, list or write which secrets: grants of path globs, default deny.

A grant gives one client capabilities (``read``, ``list``, ``write``) on a
path pattern. Patterns are secret names whose segments may hold ``*``
(any characters within one segment) or be ``**`` (any number of segments,
zero included): ``erp/*`` covers ``erp/api-key`` but not ``erp/a/b``;
``erp/**`` covers both and ``erp`` itself. A client with no matching grant
may do nothing: the policy fails closed.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

from sqlalchemy import Engine, delete, select

from interlock.clock import Clock, utc_now
from interlock.errors import InvalidRequestError, NotFoundError, did_you_mean
from interlock.secrets.tables import VaultGrantRow
from interlock.store.base import table_of

__all__ = ["CAPABILITIES", "AccessPolicy", "Capability", "Grant", "matches"]

Capability = Literal["list", "read", "write"]
CAPABILITIES: Final[tuple[Capability, ...]] = get_args(Capability)
# Matched whole (fullmatch): "$" also matches before a final line break.
_SEGMENT: Final = re.compile(r"\*\*|[a-z0-9._*-]{1,100}")
_CLIENT: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_TABLE: Final = table_of(VaultGrantRow)


@dataclass(frozen=True)
class Grant:
    """One client's capabilities on one path pattern."""

    client: str
    pattern: str
    capabilities: frozenset[Capability]


def check_pattern(pattern: str) -> str:
    """``pattern`` if it is a valid path glob, else :class:`InvalidRequestError`."""
    segments = pattern.split("/")
    if len(pattern) > 200 or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise InvalidRequestError(
            f"invalid path pattern {pattern!r}: lower-case segments, '*' within a segment, "
            "'**' for any depth (e.g. erp/* or erp/**)"
        )
    return pattern


def matches(pattern: str, name: str) -> bool:
    """Whether secret ``name`` falls under ``pattern``."""
    return _match(pattern.split("/"), name.split("/"))


def _match(pattern: Sequence[str], name: Sequence[str]) -> bool:
    if not pattern:
        return not name
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, name[i:]) for i in range(len(name) + 1))
    return bool(name) and fnmatch.fnmatchcase(name[0], head) and _match(rest, name[1:])


def _capabilities(values: Iterable[str]) -> frozenset[Capability]:
    chosen: set[Capability] = set()
    for value in values:
        if value not in CAPABILITIES:
            raise InvalidRequestError(
                f"unknown capability {value!r}; choose from {', '.join(CAPABILITIES)}"
            )
        chosen.add(value)  # narrowed to Capability by the membership test above
    if not chosen:
        raise InvalidRequestError("a grant needs at least one capability")
    return frozenset(chosen)


class AccessPolicy:
    """The vault's grants, stored with the deployment; changes take effect at once."""

    def __init__(self, engine: Engine, *, now: Clock = utc_now) -> None:
        """Bind to the store; ``now`` stamps new grants."""
        self._engine = engine
        self._now = now

    def grant(self, client: str, pattern: str, capabilities: Iterable[str]) -> Grant:
        """Give ``client`` ``capabilities`` on ``pattern`` (replacing an earlier grant of it)."""
        if not _CLIENT.fullmatch(client):
            raise InvalidRequestError(f"invalid client name {client!r}")
        check_pattern(pattern)
        chosen = _capabilities(capabilities)
        text = ",".join(sorted(chosen))
        with self._engine.begin() as connection:
            connection.execute(
                delete(_TABLE).where(_TABLE.c.client == client, _TABLE.c.pattern == pattern)
            )
            connection.execute(
                _TABLE.insert().values(
                    client=client, pattern=pattern, capabilities=text, created_at=self._now()
                )
            )
        return Grant(client, pattern, chosen)

    def revoke(self, client: str, pattern: str) -> None:
        """Remove the grant of ``pattern`` to ``client``."""
        with self._engine.begin() as connection:
            result = connection.execute(
                delete(_TABLE).where(_TABLE.c.client == client, _TABLE.c.pattern == pattern)
            )
        if result.rowcount == 0:
            hint = did_you_mean(pattern, [grant.pattern for grant in self.grants(client)])
            raise NotFoundError(f"{client} has no grant on {pattern!r}{hint}")

    def revoke_client(self, client: str) -> list[Grant]:
        """Remove every grant to ``client``; the grants removed (none is not an error)."""
        query = select(_TABLE.c.client, _TABLE.c.pattern, _TABLE.c.capabilities).where(
            _TABLE.c.client == client
        )
        with self._engine.begin() as connection:
            rows = connection.execute(query.order_by(_TABLE.c.pattern)).all()
            connection.execute(delete(_TABLE).where(_TABLE.c.client == client))
        return [Grant(r.client, r.pattern, _capabilities(r.capabilities.split(","))) for r in rows]

    def grants(self, client: str | None = None) -> list[Grant]:
        """Every grant (of ``client``), ordered by client and pattern."""
        query = select(_TABLE.c.client, _TABLE.c.pattern, _TABLE.c.capabilities)
        if client is not None:
            query = query.where(_TABLE.c.client == client)
        with self._engine.connect() as connection:
            rows = connection.execute(query.order_by(_TABLE.c.client, _TABLE.c.pattern)).all()
        return [Grant(r.client, r.pattern, _capabilities(r.capabilities.split(","))) for r in rows]

    def allows(self, client: str, capability: Capability, name: str) -> bool:
        """Whether ``client`` may do ``capability`` on secret ``name``."""
        return any(
            capability in grant.capabilities and matches(grant.pattern, name)
            for grant in self.grants(client)
        )
