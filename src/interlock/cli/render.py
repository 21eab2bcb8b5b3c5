"""Tables that show a manifest to a person (print them with `output.print_table`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from interlock.cli.output import Col, table
from interlock.config.manifest import Manifest, RateLimits

if TYPE_CHECKING:
    from interlock.privacy.ropa import Register

__all__ = ["integration_table", "register_table", "route_table", "system_table"]


def system_table(manifest: Manifest) -> Table:
    """One row per connected system."""
    result = table(
        "Systems",
        Col("system", identifier=True),
        Col("url", identifier=True),
        "location",
        "trust anchor",
        Col("credentials", identifier=True),
    )
    for name, system in manifest.systems.items():
        result.add_row(name, system.url, system.location, system.ca, system.credentials or "-")
    return result


def integration_table(manifest: Manifest) -> Table:
    """One row per integration (data flow), with its GDPR facts."""
    result = table(
        "Integrations",
        Col("integration", identifier=True),
        "flow",
        Col("client", identifier=True),
        "legal basis",
        "data categories",
        "retention",
    )
    for name, flow in manifest.integrations.items():
        transfer = (
            f"\ntransfer to {flow.transfer.destination} ({flow.transfer.safeguard})"
            if flow.transfer
            else ""
        )
        result.add_row(
            name,
            f"{flow.source} -> {flow.target}{transfer}",
            flow.client,
            flow.legal_basis,
            "\n".join(flow.data_categories),
            f"{flow.retention.days} days",
        )
    return result


def route_table(manifest: Manifest) -> Table:
    """One row per route the gateway will serve."""
    result = table(
        "Routes",
        "method",
        Col("path", identifier=True),
        Col("integration", identifier=True),
        Col("upstream", identifier=True),
        Col("scope", identifier=True),
        "rate limits",
        caption="rate limits are enforced; with Redis they hold across replicas",
    )
    for name, flow in manifest.integrations.items():
        for route in flow.routes:
            result.add_row(
                route.method,
                route.path,
                name,
                route.upstream,
                route.scope,
                _limits(route.rate_limit),
            )
    return result


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
    result = table(
        "GDPR register (Art. 30)",
        Col("integration", identifier=True),
        "record",
        "legal basis",
        "data subjects",
        "transfers",
        "measures",
    )
    for record in register.records:
        flag = "\nspecial categories" if record.special else ""
        result.add_row(
            record.integration,
            f"Art. {record.article}, {record.role}{flag}",
            record.legal_basis,
            "\n".join(subject.key for subject in record.data_subjects),
            record.transfer_statement,
            f"{len(record.measures)} configured",
        )
    return result
