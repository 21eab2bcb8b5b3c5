"""Copies of tree heads outside the database, so a rewrite of the whole log is detectable.

Where tree heads go is deployment configuration only (``INTERLOCK_AUDIT_WITNESS_FILE``,
``INTERLOCK_AUDIT_WITNESS_URL``), never an API: an attacker who could point
the witness elsewhere could hide a rewrite (compare Vault's CVE-2025-6000).

* :class:`FileWitness` keeps the latest signed checkpoint in a file, replaced
  atomically (written, flushed to disk, renamed), and never by a smaller tree
  or another log's checkpoint (a path shared by mistake).
* :class:`HttpsWitness` speaks the C2SP tlog-witness ``add-checkpoint``
  protocol over verified TLS: the old size the witness knows, a consistency
  proof from it, and the new checkpoint; a 409 tells us the witness's size.
  The witness's answer is its cosignature (C2SP tlog-cosignature), which must
  verify under the witness's configured key; it is kept in the log's database,
  so ``interlock audit verify`` can show which tree heads were witnessed. A
  witness holding a larger tree than the log's is refused: the log was rolled
  back, or forked.

A :class:`WitnessPublisher` thread sends the newest checkpoint after each
batch (coalescing bursts) and retries failures, so a slow witness never
delays an append.
"""

from __future__ import annotations

import base64
import functools
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, Protocol

from interlock.audit.errors import AuditError, AuditVerificationError
from interlock.logs import get_logger
from interlock.outbound import Timeouts, outbound_client, read_capped
from interlock.proofs.cosignature import Cosignature, CosignatureVerifier
from interlock.proofs.errors import CheckpointError

__all__ = [
    "FileWitness",
    "HttpsWitness",
    "Witness",
    "WitnessPublisher",
    "configured_witness",
    "read_witness_file",
]

_log = get_logger("interlock.audit")
MAX_WITNESS_FILE: Final = 64 * 1024
MAX_SIZE_ANSWER: Final = 64
MAX_COSIGNATURES_ANSWER: Final = 16 * 1024

Consistency = Callable[[int, int], Sequence[bytes]]


class Witness(Protocol):
    """Somewhere a signed checkpoint is copied to."""

    def publish(self, note: str, size: int, consistency: Consistency) -> Cosignature | None:
        """Copy ``note`` (a checkpoint of ``size``); its verified cosignature, if the witness
        cosigns; raise on failure."""
        ...

    def close(self) -> None:
        """Release what the witness holds (connections)."""
        ...


class FileWitness:
    """The latest checkpoint in one file."""

    def __init__(self, path: Path) -> None:
        """Write to ``path`` (its directory must exist)."""
        self.path = path

    def publish(self, note: str, size: int, consistency: Consistency) -> None:
        """Replace the file atomically and durably with ``note``; never go backwards."""
        _check_not_behind(self.path, note, size)
        directory = self.path.parent
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(note)
                stream.flush()
                os.fsync(stream.fileno())
            Path(temporary).replace(self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
        directory_fd = os.open(directory, flags)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)

    def close(self) -> None:
        """Nothing to release."""


def _check_not_behind(path: Path, note: str, size: int) -> None:
    """Refuse to replace a held checkpoint of another log, or of a larger tree."""
    if not path.exists():
        return
    held = read_witness_file(path).split("\n", 2)
    origin = note.split("\n", 1)[0]
    if len(held) < 2 or not held[1].isdigit():
        raise AuditError(f"{path}: the witness file does not hold a checkpoint")
    if held[0] != origin:
        raise AuditError(f"{path}: the witness file holds another log's checkpoint ({held[0]})")
    if int(held[1]) > size:
        raise AuditError(
            f"{path}: the witness file holds a larger tree ({held[1]}) than this one ({size}): "
            "the log went backwards"
        )


def read_witness_file(path: Path) -> str:
    """The checkpoint note a file witness holds; one-line errors naming the file."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_WITNESS_FILE + 1)
    except OSError as exc:
        raise AuditError(f"{path}: cannot read the witness file ({exc.strerror})") from None
    if len(data) > MAX_WITNESS_FILE:
        raise AuditError(f"{path}: the witness file is too large for a checkpoint")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AuditError(f"{path}: the witness file is not UTF-8") from None


def configured_witness(path: Path | None, size: int) -> list[str]:
    """The tree head the configured witness file holds, for ``verify_log(witnessed=...)``.

    ``size`` is the log's. No file configured: none. A configured file that is
    missing while the log holds entries is a verification failure: deleting
    the file must not switch the check off (a rolled-back log would verify). A
    file newly configured for a log that already holds entries is written with
    the next tree head the gateway signs (after its next batch, or its
    heartbeat); until then verification fails, naming the file.
    """
    if path is None:
        return []
    if not path.exists():
        if size == 0:
            return []
        raise AuditVerificationError(
            f"the configured witness file {path} is missing, but the log holds {size} entries "
            "(deleted? a newly configured witness file is written with the next tree head "
            "the gateway signs)",
            None,
        )
    return [read_witness_file(path)]


class HttpsWitness:
    """A C2SP tlog-witness (``POST <url>/add-checkpoint``) over verified TLS."""

    def __init__(
        self,
        url: str,
        cosigner: CosignatureVerifier,
        ca_file: Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Talk to ``url`` (https only), trusting ``ca_file`` or the system store.

        ``cosigner`` is the witness's cosigning key: its answer must carry a
        cosignature that verifies under it.

        ``timeout`` bounds connecting, each read and write, and the pool wait;
        the client is :func:`interlock.outbound.outbound_client`'s (TLS 1.2 or
        later, verified; no redirects).
        """
        if not url.startswith("https://"):
            raise AuditError("a witness URL must be https://")
        self._client = outbound_client(trust=ca_file, timeouts=Timeouts.every(timeout))
        self._url = url.rstrip("/") + "/add-checkpoint"
        self._cosigner = cosigner
        self.known_size = 0  # what the witness has seen, as far as we know

    def publish(self, note: str, size: int, consistency: Consistency) -> Cosignature:
        """Send ``note``; its verified cosignature. On a 409, resend once from the witness's size.

        Refused (:class:`AuditError`): an answer without a valid cosignature by
        the configured key, and a witness that holds a larger tree than ``size``.
        """
        text, signed, _ = note.partition("\n\n")  # the checkpoint, without signatures
        if not signed:
            raise AuditError("a checkpoint to witness is a signed note")
        text += "\n"
        for _ in range(2):
            old = self.known_size
            proof = consistency(old, size) if 0 < old < size else []
            lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
            body = "\n".join(lines) + "\n\n" + note
            with self._client.stream("POST", self._url, content=body.encode()) as response:
                status = response.status_code
                # 200: cosignature lines; 409: the size the witness holds, a few digits.
                cap = MAX_COSIGNATURES_ANSWER if status == 200 else MAX_SIZE_ANSWER
                answer = read_capped(response, cap) if status in (200, 409) else b""
            if status == 200:
                try:
                    cosigned = self._cosigner.find(text, answer.decode("utf-8"))
                except (CheckpointError, UnicodeDecodeError) as exc:
                    raise AuditError(
                        f"the witness's answer is not a valid cosignature: {exc}"
                    ) from None
                self.known_size = size
                return cosigned
            if status == 409 and answer.strip().isdigit():
                self.known_size = int(answer.strip())
                if self.known_size > size:
                    raise AuditError(
                        f"the witness holds a larger tree ({self.known_size}) than the log "
                        f"({size}): the log was rolled back or forked"
                    )
                continue
            raise AuditError(f"the witness answered {status}")
        raise AuditError("the witness keeps reporting another size")

    def close(self) -> None:
        """Release connections."""
        self._client.close()


class WitnessPublisher:
    """Sends the newest checkpoint to every witness from a background thread."""

    def __init__(
        self,
        witnesses: Sequence[Witness],
        consistency: Consistency,
        retry_seconds: float = 30.0,
        cosigned: Callable[[int, Cosignature], None] | None = None,
    ) -> None:
        """Start the thread; ``cosigned(size, cosignature)`` keeps each witness's cosignature."""
        self._witnesses = list(witnesses)
        self._consistency = consistency
        self._cosigned = cosigned
        self._retry = retry_seconds
        self._latest: tuple[str, int] | None = None
        self._sent: list[int] = [0] * len(self._witnesses)
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="audit-witness", daemon=True)
        self._thread.start()

    def offer(self, note: str, size: int) -> None:
        """A new checkpoint to publish (an older or equal size is ignored)."""
        with self._wake:
            if self._latest is None or size > self._latest[1]:
                self._latest = (note, size)
                self._wake.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every witness holds the newest checkpoint; whether they do."""
        with self._wake:
            return self._wake.wait_for(self._caught_up, timeout)

    def _caught_up(self) -> bool:
        return self._latest is None or all(s >= self._latest[1] for s in self._sent)

    def close(self) -> None:
        """Try a last send, then stop and release the witnesses."""
        self.flush(timeout=5.0)
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._thread.join(5.0)
        if not self._thread.is_alive():  # else a publish is still using them
            for witness in self._witnesses:
                witness.close()

    def _newer_than(self, size: int) -> bool:
        return self._closed or (self._latest is not None and self._latest[1] > size)

    def _run(self) -> None:
        failed_at: int | None = None  # the size whose publication last failed
        while True:
            with self._wake:
                if failed_at is not None:  # back off, unless a newer checkpoint or close comes
                    self._wake.wait_for(functools.partial(self._newer_than, failed_at), self._retry)
                self._wake.wait_for(lambda: self._closed or not self._caught_up())
                if self._closed:
                    return
                latest = self._latest
            failed_at = None
            if latest is None:
                continue
            for position, witness in enumerate(self._witnesses):
                if self._sent[position] >= latest[1]:
                    continue
                try:
                    cosignature = witness.publish(latest[0], latest[1], self._consistency)
                    if cosignature is not None and self._cosigned is not None:
                        self._cosigned(latest[1], cosignature)
                except Exception as exc:  # noqa: BLE001  (a witness failure must never stop the log)
                    _log.warning(
                        "audit_witness_failed", witness=type(witness).__name__, error=str(exc)
                    )
                    failed_at = latest[1]
                    continue
                with self._wake:
                    self._sent[position] = latest[1]
                    self._wake.notify_all()
