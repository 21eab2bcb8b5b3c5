"""The opened audit log: database, keys, group-commit writer and witnesses together.

The default sink of a deployment::

    log = AuditLog.open(settings, keyring)       # at start-up
    sink: AuditSink = log.sink
    sink.record(AuditEntry(actor="client:order-sync", action="gateway.request", ...))
    log.close()                                   # at shutdown

Everything about where the trail goes comes from :class:`Settings` (the
environment), never from an API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from interlock.audit.entry import AuditEntry, Decision, encode_decision, encode_entry
from interlock.audit.errors import AuditError
from interlock.audit.heartbeat import TreeHeadHeartbeat
from interlock.audit.keys import LogKeys, load_keys
from interlock.audit.proofs import ProofReader
from interlock.audit.search_index import search_head
from interlock.audit.storage import LogStore, StoredCheckpoint, create_audit_engines
from interlock.audit.witness import FileWitness, HttpsWitness, Witness, WitnessPublisher
from interlock.audit.writer import MAX_BATCH, GroupCommitWriter, Pending
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.proofs.cosignature import CosignatureVerifier

__all__ = ["AuditLog", "DurableSink", "default_origin"]


def default_origin(settings: Settings) -> str:
    """The checkpoint origin: ``INTERLOCK_AUDIT_ORIGIN`` or ``<trust domain>/audit``."""
    return settings.audit_origin or f"{settings.trust_domain}/audit"


class DurableSink:
    """The ``AuditSink`` of an :class:`AuditLog`: returns once the entry is committed."""

    def __init__(self, log: AuditLog) -> None:
        """Record into ``log``."""
        self._log = log

    def _submit(self, entry: AuditEntry, *, urgent: bool = True) -> Pending:
        log = self._log
        body = encode_entry(entry, log.keys.pseudonymiser, pseudonymise_ip=log.pseudonymise_ip)
        time_us = int(entry.time.timestamp() * 1_000_000)
        head = search_head(entry.actor, entry.action, entry.correlation_id)
        return log.writer.submit(body, time_us, entry.integration, urgent=urgent, head=head)

    def record(self, entry: AuditEntry) -> int:
        """Make ``entry`` durable; its index, or ``AuditUnavailableError`` within the timeout."""
        return self._log.writer.wait(self._submit(entry))

    async def record_async(self, entry: AuditEntry) -> int:
        """As :meth:`record`, without blocking the event loop."""
        return await self._log.writer.wait_async(self._submit(entry))

    def record_later(self, entry: AuditEntry) -> None:
        """Queue ``entry`` for the next batch without waiting (dropped and counted when full)."""
        log = self._log
        writer = log.writer
        if not writer.has_room():
            writer.drop()
            return
        body = encode_entry(entry, log.keys.pseudonymiser, pseudonymise_ip=log.pseudonymise_ip)
        time_us = int(entry.time.timestamp() * 1_000_000)
        head = search_head(entry.actor, entry.action, entry.correlation_id)
        writer.submit_later(body, time_us, entry.integration, head)

    def record_decision_later(self, decision: Decision) -> bool:
        """Queue a gateway decision without building its model; False: build the model instead.

        The bytes are those of ``record_later(decision_entry(decision))``
        (:func:`~interlock.audit.entry.encode_decision` checks every bound the
        model would); a decision outside them — one the model might refuse or
        change — returns False, and the caller takes the model's path. A
        decision the writer cannot take is dropped and counted before any of
        it is encoded (True: nothing is left for the caller to do).
        """
        log = self._log
        writer = log.writer
        if not writer.has_room():
            writer.drop()
            return True
        body = encode_decision(decision, log.keys.pseudonymiser, log.pseudonymise_ip)
        if body is None:
            return False
        head = search_head(decision.actor, decision.action, decision.correlation_id)
        writer.submit_later(body, decision.time_us, decision.integration, head)
        return True

    async def record_decision_async(self, decision: Decision) -> int | None:
        """Make a gateway decision durable without building its model; its index.

        The durable counterpart of :meth:`record_decision_later`: the same bytes
        as ``record_async(decision_entry(decision))``, committed before this
        returns, :class:`AuditUnavailableError` within the timeout otherwise.
        None, with nothing queued: a decision outside the bounds the encoder
        checks, for the caller to take the model's path.
        """
        log = self._log
        body = encode_decision(decision, log.keys.pseudonymiser, log.pseudonymise_ip)
        if body is None:
            return None
        head = search_head(decision.actor, decision.action, decision.correlation_id)
        pending = log.writer.submit(
            body, decision.time_us, decision.integration, urgent=True, head=head
        )
        return await log.writer.wait_async(pending)


@dataclass
class AuditLog:
    """An open audit log (build it with :meth:`open`)."""

    store: LogStore
    keys: LogKeys = field(repr=False)
    writer: GroupCommitWriter = field(repr=False)
    publisher: WitnessPublisher | None = field(repr=False)
    pseudonymise_ip: bool = True
    heartbeat: TreeHeadHeartbeat | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls,
        settings: Settings,
        keyring: Keyring,
        *,
        witnesses: Sequence[Witness] | None = None,
        max_batch: int = MAX_BATCH,
        heartbeat: bool = False,
    ) -> AuditLog:
        """Open (creating if new) the log at ``settings.audit_url`` and start its writer.

        ``witnesses`` overrides the ones the settings name (tests). ``heartbeat``:
        a long-running process also signs a tree head whenever the log has been
        idle for ``settings.audit_checkpoint_seconds`` (:mod:`interlock.audit.heartbeat`).
        """
        engine, writer_engine = create_audit_engines(settings.audit_url)
        try:
            store = LogStore(engine, writer_engine)
            keys = load_keys(engine, keyring, default_origin(settings))
        except BaseException:
            _dispose(engine, writer_engine)
            raise
        chosen = _witnesses(settings) if witnesses is None else list(witnesses)
        publisher = None
        if chosen:
            publisher = WitnessPublisher(
                chosen,
                lambda old, new: _consistency(engine, old, new),
                cosigned=store.add_cosignature,
            )

        def append(batch: Sequence[Pending]) -> list[int]:
            with store.appending(keys) as appending:
                indexes = list(
                    appending.extend(
                        [p.body for p in batch],
                        [p.time_us for p in batch],
                        [p.integration for p in batch],
                        [p.head for p in batch],
                    )
                )
                size = appending.frontier.size
            if publisher is not None:
                latest = store.latest_checkpoint()
                if latest is not None and latest.size >= size:
                    publisher.offer(latest.note, latest.size)
            return indexes

        writer = GroupCommitWriter(
            append, timeout=settings.audit_timeout_seconds, max_batch=max_batch
        )
        log = cls(store, keys, writer, publisher, settings.audit_pseudonymise_ip)
        if heartbeat and settings.audit_checkpoint_seconds > 0:
            log.heartbeat = TreeHeadHeartbeat(store, log.sink, settings.audit_checkpoint_seconds)
        return log

    @property
    def sink(self) -> DurableSink:
        """The ``AuditSink`` to give to the rest of the system."""
        return DurableSink(self)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The newest signed tree head."""
        return self.store.latest_checkpoint()

    def close(self) -> None:
        """Write what is queued, publish the last tree head, release the database."""
        if self.heartbeat is not None:
            self.heartbeat.close()
        self.writer.close()
        if self.publisher is not None:
            self.publisher.close()
        self.store.dispose()


def _dispose(*engines: Engine) -> None:
    for engine in set(engines):
        engine.dispose()


def _consistency(engine: Engine, old: int, new: int) -> list[bytes]:
    with engine.connect() as connection:
        return ProofReader(connection, new).consistency(old, new)


def _witnesses(settings: Settings) -> list[Witness]:
    chosen: list[Witness] = []
    if settings.audit_witness_file is not None:
        chosen.append(FileWitness(Path(settings.audit_witness_file)))
    if settings.audit_witness_url is not None:
        if settings.audit_witness_key is None:  # Settings refuses this; fail closed regardless
            raise AuditError("a witness URL needs the witness's cosigning key")
        cosigner = CosignatureVerifier.parse(settings.audit_witness_key)
        chosen.append(HttpsWitness(settings.audit_witness_url, cosigner, settings.audit_witness_ca))
    return chosen
