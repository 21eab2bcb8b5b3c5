"""Real brokers with TLS listeners for tests, demos and benchmarks: what a started one offers.

:mod:`interlock.testing.rabbitmq_node` starts a RabbitMQ node and
:mod:`interlock.testing.nats_node` a NATS server with JetStream, each from the
machine's own server binary, on free loopback ports, presenting a certificate
issued at run time by a test CA and requiring a client certificate from it.
Nothing is kept: the data directory is temporary and the node stops on exit.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from interlock.outbound import tls_context

__all__ = ["TlsBroker", "free_port"]


@dataclass(frozen=True)
class TlsBroker:
    """A running broker: its TLS URL, its password, the CA that issued its certificate.

    ``client_cert`` and ``client_key`` are a client certificate the broker
    accepts (mutual TLS), issued by the same CA.
    """

    kind: str  # "rabbitmq" or "nats", as in the manifest
    url: str  # amqps://USER@127.0.0.1:PORT/ or tls://127.0.0.1:PORT
    password: str | None = field(repr=False)
    ca_file: Path
    client_cert: Path
    client_key: Path

    def tls(self) -> ssl.SSLContext:
        """A client context that verifies the broker and presents the client certificate."""
        return tls_context(self.ca_file, client_certificate=(self.client_cert, self.client_key))


def free_port() -> int:
    """A free loopback port for a server about to start (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
