"""The demo after its walkthrough: commands to try, a line per request, and how it ends.

While the demo serves, each request the gateway answers is one console line
(time, client, method and path, status, correlation id), so the id a refusal
carries in its problem document and ``X-Request-Id`` can be found on screen.
SIGINT (Ctrl-C) and SIGTERM stop it; the demo then says what it deleted, or
where the data directory it kept is and how to use it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from rich.text import Text

from interlock.cli.context import console
from interlock.gateway.metrics_listener import MetricsListener
from interlock.gateway.observer import RequestSeen

__all__ = ["RequestLines", "Stop", "contents", "farewell", "stop_on_signals", "try_it"]

#: What the demo's data directory holds, by file name (SQLite's side files go with theirs).
_CONTENTS: Final = {
    "keyring.json": "keyring",
    "interlock.db": "store (API keys, secrets, the local CA's key)",
    "audit.db": "audit log",
    "ca.pem": "CA certificate",
}
_SQLITE_SIDE_FILES: Final = ("-wal", "-shm", "-journal")
_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


class RequestLines:
    """The gateway's request observer that prints one line per request, once :attr:`live`."""

    def __init__(self) -> None:
        """Silent until :attr:`live` is set (the walkthrough shows its own calls)."""
        self.live = False

    def __call__(self, seen: RequestSeen) -> None:
        """Print ``seen`` as one line: time, client, method and path, status, correlation id."""
        if self.live:
            console.print(line(seen, datetime.now(UTC)), soft_wrap=True, highlight=False)


def line(seen: RequestSeen, at: datetime) -> Text:
    """``14:03:07Z  order-sync  GET /orders/1001  200  <correlation id>`` (never a query)."""
    colour = "green" if seen.status < 400 else "yellow" if seen.status < 500 else "red"
    return Text.assemble(
        (at.strftime("%H:%M:%SZ"), "dim"),
        "  ",
        seen.client or "-",
        "  ",
        f"{seen.method} {_printable(seen.path)}",
        "  ",
        (str(seen.status), colour),
        "  ",
        seen.correlation_id,
    )


def _printable(path: str) -> str:
    """The path with control characters escaped: a caller's path never steers the terminal."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in path)


def try_it(
    base: str,
    ca_file: Path,
    key_file: Path,
    metrics: MetricsListener | None,
    *,
    serving: bool,
    deletes: bool,
) -> None:
    """The ``curl`` lines, and what they need: the demo serving (``serving``: it is now)."""
    if serving:
        end = "deletes its data directory" if deletes else "keeps its data directory"
        console.print(
            f"\n[bold]Try it[/bold] (each request shows below as time, client, method and path, "
            f"status, correlation id; Ctrl-C stops the demo and {end}):",
            soft_wrap=True,
        )
    else:
        console.print(
            "\n[bold]Try it[/bold] while `interlock demo` serves (without --once): this run's "
            "gateway has stopped, and a serving run prints these lines with its own port and "
            "paths:",
            soft_wrap=True,
        )
    console.print(
        f'  curl --cacert {ca_file} -H "Authorization: Bearer $(cat {key_file})" '
        f"{base}/orders/1001",
        markup=False,
        soft_wrap=True,
    )
    console.print(f"  curl --cacert {ca_file} {base}/orders/1001", markup=False, soft_wrap=True)
    if metrics is not None:  # a listener of its own, loopback only
        console.print(f"  curl {metrics.url}", markup=False, soft_wrap=True)


@dataclass
class Stop:
    """Whether SIGINT or SIGTERM stopped the demo, and whether it was serving by then."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    signal: str | None = None  # SIGINT or SIGTERM, once received
    serving: bool = False


@contextlib.contextmanager
def stop_on_signals(stop: Stop, work: asyncio.Task[None]) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop``; before the demo serves they also cancel ``work``."""
    loop = asyncio.get_running_loop()

    def received(signum: signal.Signals) -> None:
        if stop.signal is not None:  # a second one: the first is being handled
            return
        stop.signal = signum.name
        console.print(f"\n{signum.name}: stopping the demo", highlight=False)
        stop.event.set()
        if not stop.serving:
            work.cancel()  # the walkthrough, wherever it is; its finally stops the servers

    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, received, signum)
    try:
        yield
    finally:
        for signum in _STOP_SIGNALS:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)


def contents(data_dir: Path) -> str:
    """What ``data_dir`` holds, in words: ``keyring, store (...), audit log, ...``."""
    try:
        names = sorted(entry.name for entry in data_dir.iterdir())
    except OSError:
        return "nothing readable"
    described = [label for name, label in _CONTENTS.items() if name in names]
    others = [
        name
        for name in names
        if name not in _CONTENTS
        and not any(name.removesuffix(side) in _CONTENTS for side in _SQLITE_SIDE_FILES)
    ]
    if others:
        described.append(f"the walkthrough's files ({', '.join(others)})")
    return ", ".join(described) or "nothing"


def farewell(data_dir: Path, *, keep: bool, manifest: Path) -> None:
    """Delete the demo's data directory and say what was in it; or, kept, how to reuse it."""
    held = contents(data_dir)
    if keep:
        console.print(
            f"kept the demo's data directory {data_dir}: {held}. To use it again:",
            markup=False,
            soft_wrap=True,
            highlight=False,
        )
        for command in (
            "interlock audit verify",
            f"interlock keys list --manifest {manifest}",
            # The example names secrets the demo did not store; the sample ERP has stopped.
            f"INTERLOCK_MISSING_SECRETS=start interlock serve --manifest {manifest}",
        ):
            console.print(
                f"  INTERLOCK_DATA_DIR={data_dir} {command}",
                markup=False,
                soft_wrap=True,
                highlight=False,
            )
        return
    shutil.rmtree(data_dir, ignore_errors=True)
    said = (
        f"could not delete all of the demo's data directory {data_dir} (remove it by hand): "
        if data_dir.exists()
        else f"deleted the demo's data directory {data_dir}: "
    )
    console.print(said + held, markup=False, soft_wrap=True, highlight=False)
