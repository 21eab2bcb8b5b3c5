"""A RabbitMQ test node with a TLS listener. Placeholder: being written (issue 22)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from interlock.testing.brokers import TlsBroker

__all__ = ["started", "unavailable"]


def unavailable() -> str | None:
    """Why no node can be started here, or None."""
    return "not written yet"


@contextmanager
def started(directory: Path) -> Iterator[TlsBroker]:
    """A running node using ``directory``; stopped on exit."""
    raise NotImplementedError
    yield
