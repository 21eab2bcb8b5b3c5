"""``interlock serve`` under cProfile, switched on and off by signals (benchmark-only).

The fallback of ``run.py --profile FILE`` when py-spy is not installed:
``issuance.py`` starts the server as ``python profiled_serve.py FILE serve ...``
instead of ``python -m interlock serve ...``. SIGUSR1 starts the profiler,
SIGUSR2 stops it and writes the statistics (``pstats``) to FILE, so only the
measured run is profiled, not start-up or the other servers' turns.

cProfile sees the thread it is enabled in: the event loop's, where the token
endpoint answers when the secret's row and the signing key are in memory
(requests that go to a worker thread show as ``asyncio.to_thread``).

Usage: python profiled_serve.py FILE serve --manifest M --listen HOST:PORT
"""

from __future__ import annotations

import cProfile
import signal
import sys
from pathlib import Path
from types import FrameType


def main() -> None:
    """Install the signal handlers, then run the command line with the remaining arguments."""
    output = Path(sys.argv[1])
    profiler = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(output)

    # Python runs these handlers in the main thread, which runs the event loop.
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    # Imported after the handlers are in place.
    from interlock.cli.launch import run

    run(sys.argv[2:])


if __name__ == "__main__":
    main()
