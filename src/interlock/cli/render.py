"""Tables that show a manifest to a person."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from interlock.config.manifest import Manifest, RateLimits

if TYPE_CHECKING:
    from interlock.privacy.ropa import Register

__all__ = ["integration_table", "register_table", "route_table", "system_table"]


def system_table(manifest: Manifest) -> Table:
    """One row per connected system."""
    table = Table(title="Systems", title_justify="left")
    for column in ("system", "url", "location", "trust anchor", "credentials"):
        table.add_column(column)
    for name, system in manifest.systems.items():
        table.add_row(name, system.url, system.location, system.ca, system.credentials or "-")
    return table


def integration_table(manifest: Manifest) -> Table:
    """One row per integration (data flow), with its GDPR facts."""
    table = Table(title="Integrations", title_justify="left")
    for column in ("integration", "flow", "client", "legal basis", "data categories", "retention"):
        table.add_column(column)
    for name, flow in manifest.integrations.items():
        transfer = (
            f"\ntransfer to {flow.transfer.destination} ({flow.transfer.safeguard})"
            if flow.transfer
            else ""
        )
        table.add_row(
            name,
            f"{flow.source} -> {flow.target}{transfer}",
            flow.client,
            flow.legal_basis,
            "\n".join(flow.data_categories),
            f"{flow.retention.days} days",
        )
    return table


def route_table(manifest: Manifest) -> Table:
    """One row per route the gateway will serve."""
    table = Table(
        title="Routes",
        title_justify="left",
        caption="rate limits are enforced; with Redis they hold across replicas",
        caption_justify="left",
    )
    for column in ("method", "path", "integration", "upstream", "scope", "rate limits"):
        table.add_column(column)
    for name, flow in manifest.integrations.items():
        for route in flow.routes:
            table.add_row(
                route.method,
                route.path,
                name,
                route.upstream,
                route.scope,
                _limits(route.rate_limit),
            )
    return table


def _limits(limits: RateLimits | None) -> str:
    if limits is None:
        return "-"
    parts = [
        f"{label} {rate}"
        for label, rate in (
            ("client", limits.per_client),
            ("ip", limits.per_ip),
            ("route", limits.per_route),
            ("integration", limits.per_integration),
        )
        if rate is not None
    ]
    return "\n".join(parts) or "-"


def register_table(register: Register) -> Table:
    """The GDPR register (Art. 30) in short: one row per processing activity."""
    table = Table(title="GDPR register (Art. 30)", title_justify="left")
    for column in (
        "integration",
        "record",
        "legal basis",
        "data subjects",
        "transfers",
        "measures",
    ):
        table.add_column(column, overflow="fold")
    for record in register.records:
        flag = "\nspecial categories" if record.special else ""
        table.add_row(
            record.integration,
            f"Art. {record.article}, {record.role}{flag}",
            record.legal_basis,
            "\n".join(subject.key for subject in record.data_subjects),
            record.transfer_statement,
            f"{len(record.measures)} configured",
        )
    return table
