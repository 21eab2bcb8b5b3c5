"""The RabbitMQ (aio-pika) broker adapter. Placeholder: being written (issue 22)."""

from __future__ import annotations

import ssl

from interlock.messaging.model import BrokerAdapter

__all__ = ["RabbitMqBroker"]


class RabbitMqBroker:
    """Implements :class:`~interlock.messaging.model.BrokerAdapter`."""

    kind = "rabbitmq"

    @classmethod
    async def connect(cls, url: str, *, tls: ssl.SSLContext, password: str | None) -> BrokerAdapter:
        """Connect over TLS."""
        raise NotImplementedError
