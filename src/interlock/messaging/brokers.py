"""Open a broker adapter for a manifest broker: RabbitMQ or NATS JetStream, TLS only."""

from __future__ import annotations

import ssl

from interlock.config.messaging import Broker
from interlock.errors import MissingExtraError
from interlock.messaging.model import BrokerAdapter

__all__ = ["open_broker"]


async def open_broker(
    broker: Broker, *, tls: ssl.SSLContext, password: str | None = None
) -> BrokerAdapter:
    """A connected adapter for ``broker``.

    ``tls`` verifies the broker's certificate (it may carry a client
    certificate for mutual TLS); ``password`` is the broker password resolved
    from the vault (``credentials``), for the user named in the URL.
    """
    try:
        if broker.kind == "rabbitmq":
            from interlock.messaging.rabbitmq import RabbitMqBroker

            return await RabbitMqBroker.connect(broker.url, tls=tls, password=password)
        from interlock.messaging.nats import NatsBroker

        return await NatsBroker.connect(broker.url, tls=tls, password=password)
    except ModuleNotFoundError as missing:
        raise MissingExtraError(f"a {broker.kind} broker", "messaging", missing) from missing
