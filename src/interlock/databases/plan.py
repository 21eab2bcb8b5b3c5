"""What a shared-database integration needs on its server, from the manifest alone (pure).

:func:`plan_for` turns ``integrations.NAME.database`` into a :class:`Plan`:
the generated names (a schema or database of views per consumer, a pair of
login roles per consumer, one owner role for the views) and each view's
columns, row filter and writable columns. The dialect modules
(:mod:`~interlock.databases.postgresql`, :mod:`~interlock.databases.mariadb`)
turn a plan into statements; :mod:`~interlock.databases.drift` compares a
server's catalog with it.

Each consumer gets **two** login roles, ``<prefix>_<client>_a`` and ``_b``,
with identical grants: the rotation engine alternates between them
(:mod:`interlock.secrets.rotators.postgresql`), so the previous password
keeps working through the overlap and stops after it. Neither inherits
anything, belongs to any role or holds any attribute beyond ``LOGIN``.

A consumer removed from the manifest leaves its two logins on the server:
:meth:`Plan.retired` recognises them by the naming scheme
(``<prefix>_<anything>_a|_b``, minus the names any other integration of the
manifest generates), so apply locks them and revokes what they hold, and the
audit reports them until then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Final, Literal

from interlock.config.databases import SLOTS, Filter, consumer_base, role_prefix
from interlock.errors import InvalidRequestError, did_you_mean

if TYPE_CHECKING:
    from interlock.config.databases import DatabaseSystem
    from interlock.config.manifest import Manifest

__all__ = ["ConsumerPlan", "Plan", "ViewPlan", "plan_for", "secret_name"]

_MAX_IDENTIFIER: Final = 63  # PostgreSQL's limit (MariaDB: 64 for names, 80 for users)


@dataclass(frozen=True)
class ViewPlan:
    """One view: ``schema.name`` over ``source_schema.source_table``."""

    name: str
    source_schema: str
    source_table: str
    columns: tuple[str, ...]
    categories: tuple[str, ...]
    row_filter: Filter | None
    write: tuple[str, ...]
    rows: str | None = None  # the filter as the manifest writes it (for snapshots)


@dataclass(frozen=True)
class ConsumerPlan:
    """A consuming client: its schema of views, its two logins and their limits."""

    client: str
    schema: str
    logins: tuple[str, str]
    connection_limit: int
    statement_timeout: timedelta
    from_host: str
    views: tuple[ViewPlan, ...]
    secret: str

    @property
    def writes(self) -> bool:
        """Whether any of the consumer's views is writable."""
        return any(view.write for view in self.views)


@dataclass(frozen=True)
class Plan:
    """Everything one integration needs on its database server."""

    integration: str
    system_name: str
    system: DatabaseSystem
    kind: Literal["postgresql", "mariadb"]
    owner: str
    consumers: tuple[ConsumerPlan, ...]
    prefix: str
    #: Role names the manifest's other integrations generate (never this plan's to retire).
    foreign: frozenset[str]

    @property
    def source_tables(self) -> tuple[tuple[str, str], ...]:
        """Every ``(schema, table)`` a view reads, once, in order."""
        seen = dict.fromkeys(
            (v.source_schema, v.source_table) for c in self.consumers for v in c.views
        )
        return tuple(seen)

    def login(self, name: str) -> ConsumerPlan | None:
        """The consumer a login role belongs to."""
        return next((c for c in self.consumers if name in c.logins), None)

    def retired(self, name: str) -> bool:
        """Whether ``name`` is a login of this integration's scheme that no consumer has now."""
        scheme = rf"{re.escape(self.prefix)}_[a-z0-9_]+_({'|'.join(SLOTS)})"
        return (
            bool(self.prefix)
            and re.fullmatch(scheme, name) is not None
            and self.login(name) is None
            and name not in self.foreign
        )


def secret_name(integration: str, client: str) -> str:
    """The vault name of a consumer's credential: ``db/<integration>/<client>``."""
    return f"db/{integration}/{client}"


def _identifier(value: str, where: str) -> str:
    if len(value) > _MAX_IDENTIFIER:
        raise InvalidRequestError(
            f"{where}: the generated name {value!r} is longer than {_MAX_IDENTIFIER} "
            "characters; set a shorter database.prefix"
        )
    return value


def plan_for(manifest: Manifest, integration: str) -> Plan:
    """The plan of ``integration``; :class:`InvalidRequestError` naming the manifest path."""
    flow = manifest.integrations.get(integration)
    shared = [n for n, f in manifest.integrations.items() if f.database is not None]
    if flow is None:
        hint = did_you_mean(integration, shared)
        raise InvalidRequestError(f"integrations.{integration}: no such integration{hint}")
    spec = flow.database
    at = f"integrations.{integration}.database"
    if spec is None:
        hint = did_you_mean(integration, shared)
        raise InvalidRequestError(f"{at}: not a shared_database integration (no database:){hint}")
    system = manifest.databases.get(spec.system)
    if system is None:
        hint = did_you_mean(spec.system, manifest.databases)
        raise InvalidRequestError(f"{at}.system: unknown database system {spec.system!r}{hint}")
    prefix = role_prefix(integration, spec)
    consumers: list[ConsumerPlan] = []
    for client, consumer in spec.consumers.items():
        if client not in manifest.clients:
            hint = did_you_mean(client, manifest.clients)
            raise InvalidRequestError(f"{at}.consumers.{client}: unknown client {client!r}{hint}")
        where = f"{at}.consumers.{client}"
        base = _identifier(consumer_base(prefix, client), where)
        a, b = (_identifier(f"{base}_{slot}", where) for slot in SLOTS)
        logins = (a, b)
        views = tuple(
            ViewPlan(
                name=name,
                source_schema=view.table.split(".", 1)[0],
                source_table=view.table.split(".", 1)[1],
                columns=tuple(view.columns),
                categories=tuple(view.columns.values()),
                row_filter=view.row_filter,
                write=view.write,
                rows=view.rows,
            )
            for name, view in consumer.views.items()
        )
        consumers.append(
            ConsumerPlan(
                client=client,
                schema=base,
                logins=logins,
                connection_limit=consumer.connection_limit,
                statement_timeout=consumer.statement_timeout,
                from_host=consumer.from_host,
                views=views,
                secret=secret_name(integration, client),
            )
        )
    return Plan(
        integration=integration,
        system_name=spec.system,
        system=system,
        kind=system.kind,
        owner=_identifier(f"{prefix}_owner", at),
        consumers=tuple(consumers),
        prefix=prefix,
        foreign=frozenset(
            generated
            for other, flow in manifest.integrations.items()
            if other != integration and flow.database is not None
            for namespace, generated, _ in flow.database.generated_names(other)
            if namespace == "role"
        ),
    )
