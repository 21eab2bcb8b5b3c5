"""A writer to kill: a zygote that imports once and forks one audit writer per command.

Run with ``sys.executable``; reads commands on standard input:

* ``run URL KEYRING ACKS TAG``: fork a writer; print its pid. The writer records
  entries from four threads and appends ``index correlation-id`` to ACKS once
  each ``record`` has returned (the entry is acknowledged as durable).
* ``reap PID``: wait for the killed writer; print its wait status.

Forking from an already-imported process keeps 50 kills within seconds.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from interlock.audit import AuditEntry, Outcome
from interlock.audit.service import AuditLog
from interlock.config.settings import Settings
from interlock.crypto import Keyring


def _write(url: str, keyring: Path, acks: Path, tag: str) -> None:
    settings = Settings(data_dir=keyring.parent, audit_database_url=url)
    log = AuditLog.open(settings, Keyring.load(keyring), witnesses=[], max_batch=8)
    descriptor = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def produce(thread: int) -> None:
        number = 0
        while True:
            correlation = f"{tag}-{thread}-{number}"
            entry = AuditEntry(
                actor="client:crash", action="gateway.request", integration="crash",
                outcome=Outcome(result="success", status=200), correlation_id=correlation,
            )  # fmt: skip
            index = log.sink.record(entry)
            os.write(descriptor, f"{index} {correlation}\n".encode())
            number += 1

    for thread in range(4):
        threading.Thread(target=produce, args=(thread,), daemon=True).start()
    threading.Event().wait()


def main() -> None:
    """Serve commands until standard input closes."""
    for line in sys.stdin:
        command, *args = line.split()
        if command == "run":
            pid = os.fork()
            if pid == 0:
                try:
                    _write(args[0], Path(args[1]), Path(args[2]), args[3])
                finally:
                    os._exit(1)
            sys.stdout.write(f"{pid}\n")
            sys.stdout.flush()
        elif command == "reap":
            _, status = os.waitpid(int(args[0]), 0)
            sys.stdout.write(f"{status}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
