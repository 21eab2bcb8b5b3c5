"""One messaging integration as the producer, consumer and dead-letter desk see it.

Looked up once from the manifest: the integration (its ends and categories,
which every audit entry reports), its ``messaging:`` section, its broker
topology and its payload schema, compiled once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from interlock.audit.entry import Decision
from interlock.config.manifest import Integration, Manifest
from interlock.config.messaging import MessagingSpec
from interlock.messaging.model import BrokerError, Topology, topology_of
from interlock.validation.schema import RequestSchema, compile_schema

__all__ = ["MessagingFlow", "integration_decision", "messaging_flow"]


@dataclass(frozen=True)
class MessagingFlow:
    """A messaging integration of the manifest, with what its messages are checked against."""

    name: str
    integration: Integration
    spec: MessagingSpec
    topology: Topology
    schema: RequestSchema | None

    @property
    def producer(self) -> str:
        """The client that produces (the integration's client)."""
        return self.integration.client

    def decision(
        self,
        *,
        actor: str,
        action: str,
        result: Literal["success", "failure"],
        size: int = 0,
        records: int = 1,
        reason: str | None = None,
        details: Mapping[str, str | int | bool] | None = None,
    ) -> Decision:
        """An audit entry about this integration's messages (never their payload)."""
        return integration_decision(
            self.name,
            self.integration,
            actor=actor,
            action=action,
            result=result,
            size=size,
            records=records,
            reason=reason,
            details=details,
        )


def integration_decision(
    name: str,
    integration: Integration,
    *,
    actor: str,
    action: str,
    result: Literal["success", "failure"],
    size: int = 0,
    records: int = 1,
    reason: str | None = None,
    details: Mapping[str, str | int | bool] | None = None,
    data_categories: tuple[str, ...] | None = None,
) -> Decision:
    """An audit entry about messages of integration ``name`` (never their payload).

    As the fields of a :class:`~interlock.audit.entry.Decision`, which
    :func:`~interlock.audit.sink.record_decision` records without building
    the entry's model where the sink can (one per message on each side).
    ``data_categories``: those of the data concerned, when narrower than the
    integration's (an event stream names what each copy carried).
    """
    return Decision(
        time_us=time.time_ns() // 1000,
        actor=actor,
        action=action,
        integration=name,
        source=integration.source,
        target=integration.target,
        data_categories=(
            integration.data_categories if data_categories is None else data_categories
        ),
        records=records,
        bytes=size,
        result=result,
        status=None,
        correlation_id=None,
        reason=reason,
        details=dict(details or {}),
        client_ip=None,
    )


def messaging_flow(manifest: Manifest, integration: str) -> MessagingFlow:
    """The messaging integration ``integration`` of ``manifest``; :class:`BrokerError` if none."""
    topology = topology_of(manifest, integration)
    flow = manifest.integrations[integration]
    spec = flow.messaging
    if spec is None:  # topology_of refused it already; this tells the type checker
        raise BrokerError(f"{integration!r} is not a messaging integration of the manifest")
    schema: dict[str, Any] | None = spec.schema_
    return MessagingFlow(
        name=integration,
        integration=flow,
        spec=spec,
        topology=topology,
        schema=None if schema is None else compile_schema(schema),
    )
