"""Art. 30 facts of shared-database integrations: each consuming client, and the view measures.

Every consuming client reads the source's data through its own views: the
register lists it among the recipients (Art. 30(1)(d)) with the data
categories of exactly the columns it may read, and the measures say how its
access is limited (views of declared columns and rows, no table grants,
rotated credentials, TLS) — all from the manifest's ``database:`` section.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from interlock.config.units import format_duration
from interlock.privacy.ropa_measures import Measure

if TYPE_CHECKING:
    from interlock.config.manifest import Integration, Manifest

__all__ = ["consumer_recipients", "database_measures"]


def consumer_recipients(
    manifest: Manifest, name: str, flow: Integration
) -> Iterator[tuple[str, str, str | None]]:
    """``(shown name, configured at, location)`` of each consuming client."""
    spec = flow.database
    if spec is None:
        return
    system = manifest.databases.get(spec.system)
    for client, consumer in spec.consumers.items():
        categories = sorted({c for view in consumer.views.values() for c in view.columns.values()})
        views = ", ".join(consumer.views)
        yield (
            f"{client} (database consumer: reads {', '.join(categories)} through {views}"
            f"{' on ' + system.host if system is not None else ''})",
            f"integrations.{name}.database.consumers.{client}",
            None,
        )


def database_measures(manifest: Manifest, name: str, flow: Integration) -> Iterator[Measure]:
    """The measures of integration ``name``'s database access (nothing for other types)."""
    spec = flow.database
    if spec is None:
        return
    at = f"integrations.{name}.database"
    system = manifest.databases.get(spec.system)
    for client, consumer in spec.consumers.items():
        filtered = [n for n, v in consumer.views.items() if v.rows]
        yield Measure(
            "minimisation",
            f"{client} reads views of the declared columns only"
            + (f", rows filtered in {', '.join(filtered)}" if filtered else "")
            + "; it holds no grant on the tables behind them",
            f"{at}.consumers.{client}.views",
        )
        yield Measure(
            "authorisation",
            f"{client} logs in as its own roles (no inheritance, no role attribute), at most "
            f"{consumer.connection_limit} connection(s), statements stopped after "
            f"{format_duration(consumer.statement_timeout)}; its password rotates in the vault",
            f"{at}.consumers.{client}",
        )
    if system is not None:
        yield Measure(
            "tls",
            f"Interlock reaches {spec.system} ({system.kind}) with TLS verified against {system.ca}"
            if system.tls == "verify-full"
            else f"{spec.system} ({system.kind}) is reached on the loopback interface only",
            f"databases.{spec.system}",
        )
