"""Test-owned Redis servers on free ports: a plain node, a Sentinel, a one-node cluster.

Never the machine's shared Redis: these are started and stopped by the tests
that use them, so a failover or a restart disturbs no one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

__all__ = ["Node", "free_port", "start_node", "wait_for"]


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: object, seconds: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition()`` (a callable returning truthy) until it holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {seconds} s")


@dataclass
class Node:
    """One redis-server process (a data node or a Sentinel)."""

    port: int
    process: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        """A plain client of this node (close it)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def stop(self) -> None:
        """Terminate and reap the process."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_node(workdir: Path, args: Sequence[str], *, config: str | None = None) -> Node:
    """Start redis-server with ``args`` (plus its port) in ``workdir``; wait until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    for _ in range(5):
        port = free_port()
        command = [binary]
        if config is not None:  # a Sentinel's config file must come first, and be writable
            path = workdir / f"sentinel-{port}.conf"
            path.write_text(config.format(port=port))
            command.append(str(path))
        command += ["--port", str(port), "--dir", str(workdir), "--save", "", *args]
        process = subprocess.Popen(  # noqa: S603  (fixed arguments)
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            node = Node(port, process)
            if _answers(node):
                return node
            time.sleep(0.02)
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)
    raise RuntimeError("redis-server did not start on a free port after 5 tries")


def _answers(node: Node) -> bool:
    """The node answers PING (a bare connect could reach a process about to exit)."""
    client = node.client()
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
