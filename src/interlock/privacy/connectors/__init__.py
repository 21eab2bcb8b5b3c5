"""Connectors: how a data-subject request reaches each system (docs/privacy.md).

``webhook`` (a signed HTTPS ``POST``), ``sql`` (the manifest's parameterised
statements) or ``manual`` (no ``privacy`` block: the operator acts and
confirms). :func:`connector_factory` builds the first two from the manifest
and a :class:`ConnectorEnvironment`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from interlock.config.manifest import Manifest, System
from interlock.errors import ConfigError
from interlock.privacy.connectors.base import (
    ACTIONS,
    Action,
    Connector,
    ConnectorAnswer,
    ConnectorEnvironment,
    ConnectorError,
    SecretSource,
    answer_digest,
    canonical_data,
)

__all__ = [
    "ACTIONS",
    "Action",
    "Connector",
    "ConnectorAnswer",
    "ConnectorEnvironment",
    "ConnectorError",
    "ConnectorFactory",
    "ConnectorKind",
    "SecretSource",
    "answer_digest",
    "canonical_data",
    "connector_factory",
    "connector_kind",
]

ConnectorKind = Literal["webhook", "sql", "manual"]

#: Builds the connector of a manifest system, by name (webhook and sql systems only).
ConnectorFactory = Callable[[str], Connector]


def connector_kind(system: System) -> ConnectorKind:
    """How requests reach ``system``: its ``privacy`` connector, or ``manual`` without one."""
    return "manual" if system.privacy is None else system.privacy.connector


def connector_factory(manifest: Manifest, environment: ConnectorEnvironment) -> ConnectorFactory:
    """The connectors of ``manifest``'s systems, built with ``environment``'s parts."""
    from interlock.privacy.connectors.sql import SqlConnector
    from interlock.privacy.connectors.webhook import WebhookConnector

    def build(name: str) -> Connector:
        system = manifest.systems.get(name)
        privacy = None if system is None else system.privacy
        if system is None or privacy is None:
            raise ConfigError(f"system {name!r} has no privacy connector in the manifest")
        if privacy.webhook is not None:
            return WebhookConnector(name, privacy.webhook, system.ca, environment)
        if privacy.sql is None:  # SystemPrivacy names exactly one; fail closed regardless
            raise ConfigError(f"system {name!r} names no privacy connector")
        return SqlConnector(name, privacy.sql, environment)

    return build
