"""One SFTP file integration's transfers: pull into quarantine or push an outbox, on a schedule.

An inbound integration (``transport: sftp``, ``direction: inbound``) pulls
from the partner into its :class:`~interlock.files.quarantine.Quarantine`,
which audits every file. An outbound one pushes the files waiting in its
:class:`Outbox` (``root/outbox/<integration>/``), then moves them to
``root/sent/<integration>/`` — never over an earlier copy: a name already
there is kept as ``H-NAME`` (H: the first 16 hex of its SHA-256), as the
quarantine keeps refused files; each pushed file is an audit entry
(``files.send``, with its hash and size). :func:`run_scheduled` repeats a
transfer every ``files.schedule`` until stopped; a failed run is audited and
retried at the next turn, never hidden.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from interlock.audit import AuditEntry, AuditSink, Outcome, Volume
from interlock.clock import Clock, utc_now
from interlock.config.files import FilesSpec, SftpPartner
from interlock.config.manifest import Integration, Manifest
from interlock.errors import ConfigError, InterlockError
from interlock.files.names import suggest_file_flow
from interlock.files.quarantine import Quarantine, Verdict, check_name, move_new
from interlock.files.sftp import pull, push

__all__ = ["Outbox", "run_every", "run_scheduled", "transfer_once"]


class Outbox:
    """The files an outbound integration will push: ``root/outbox/<integration>/`` (0700)."""

    def __init__(self, root: Path, integration: str) -> None:
        """Create the outbox and sent directories of ``integration`` if needed."""
        self.pending_dir = root / "outbox" / integration
        self.sent_dir = root / "sent" / integration
        for path in (self.pending_dir, self.sent_dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)

    def pending(self) -> list[tuple[str, bytes]]:
        """The regular files waiting (symlinks and unsafe names skipped), by name.

        Names starting with a dot are skipped: a producer writes ``.NAME.part``
        and renames it to ``NAME`` when complete (docs/files.md), so a file still
        being written is never read.
        """
        files = []
        for path in sorted(self.pending_dir.iterdir()):
            if path.is_symlink() or not path.is_file() or check_name(path.name) is not None:
                continue
            files.append((path.name, path.read_bytes()))
        return files

    def sent(self, name: str) -> None:
        """Move a pushed file to the sent directory, never over an earlier copy there.

        ``NAME`` when free, else ``H-NAME`` (H: 16 hex of its SHA-256); when that is
        taken too, the very same bytes were sent under this name before and are kept.
        """
        pending = self.pending_dir / name
        try:
            move_new(pending, self.sent_dir / name)
        except FileExistsError:
            digest = hashlib.sha256(pending.read_bytes()).hexdigest()[:16]
            try:
                move_new(pending, self.sent_dir / f"{digest}-{name}")
            except FileExistsError:
                pending.unlink()


def _sftp_flow(manifest: Manifest, integration: str) -> tuple[Integration, FilesSpec, SftpPartner]:
    flow = manifest.integrations.get(integration)
    spec = flow.files if flow is not None else None
    if flow is None or spec is None or spec.transport != "sftp":
        hint = suggest_file_flow(manifest, integration, "sftp")
        raise ConfigError(f"integration {integration!r} is no SFTP file transfer{hint}")
    partner = manifest.partners.get(spec.partner)
    if partner is None or partner.sftp is None:
        raise ConfigError(f"partner {spec.partner!r} has no sftp: section")
    return flow, spec, partner.sftp


async def transfer_once(
    manifest: Manifest,
    integration: str,
    client_key: bytes,
    *,
    audit: AuditSink,
    quarantine: Quarantine | None = None,
    outbox: Outbox | None = None,
    now: Clock = utc_now,
) -> list[Verdict]:
    """Run the integration's transfer once: pull (inbound, needs ``quarantine``) or push.

    Returns the quarantine's verdicts of a pull (empty for a push).
    """
    flow, spec, partner = _sftp_flow(manifest, integration)
    if spec.direction == "inbound":
        if quarantine is None:
            raise ConfigError(f"inbound integration {integration!r} needs its quarantine")
        held = quarantine

        async def receive(name: str, data: bytes, sidecars: Mapping[str, bytes]) -> Verdict:
            return await held.accept(name, data, sidecars=sidecars)

        return await pull(partner, spec, client_key, receive=receive)
    if outbox is None:
        raise ConfigError(f"outbound integration {integration!r} needs its outbox")
    for name, data in outbox.pending():  # one at a time: each pushed file is audited
        await push(partner, spec, client_key, [(name, data)])
        outbox.sent(name)
        await audit.record_async(_sent(flow, spec, integration, name=name, data=data, now=now))
    return []


def _sent(
    flow: Integration, spec: FilesSpec, integration: str, *, name: str, data: bytes, now: Clock
) -> AuditEntry:
    return AuditEntry(
        time=now(),
        actor="system:files",
        action="files.send",
        integration=integration,
        source=flow.source,
        target=flow.target,
        data_categories=tuple(str(category) for category in flow.data_categories),
        volume=Volume(records=0, bytes=len(data)),
        outcome=Outcome(result="success"),
        details={"sha256": hashlib.sha256(data).hexdigest(), "file": name, "partner": spec.partner},
    )


async def run_scheduled(
    manifest: Manifest,
    integration: str,
    client_key: bytes,
    *,
    audit: AuditSink,
    stop: asyncio.Event,
    quarantine: Quarantine | None = None,
    outbox: Outbox | None = None,
    now: Clock = utc_now,
) -> None:
    """Transfer every ``files.schedule`` until ``stop`` is set; a failed run is audited."""
    flow, spec, _ = _sftp_flow(manifest, integration)

    async def once() -> object:
        return await transfer_once(
            manifest,
            integration,
            client_key,
            audit=audit,
            quarantine=quarantine,
            outbox=outbox,
            now=now,
        )

    await run_every(flow, spec, integration, once, audit=audit, stop=stop, now=now)


async def run_every(
    flow: Integration,
    spec: FilesSpec,
    integration: str,
    once: Callable[[], Awaitable[object]],
    *,
    audit: AuditSink,
    stop: asyncio.Event,
    now: Clock = utc_now,
) -> None:
    """Run ``once`` every ``spec.schedule`` until ``stop`` is set; a failed run is audited."""
    while not stop.is_set():
        try:
            await once()
        except InterlockError as exc:
            await audit.record_async(
                AuditEntry(
                    time=now(),
                    actor="system:files",
                    action="files.transfer",
                    integration=integration,
                    source=flow.source,
                    target=flow.target,
                    outcome=Outcome(result="failure"),
                    reason=f"{exc.code}: {exc.message}"[:500],
                    details={"partner": spec.partner},
                )
            )
        try:
            await asyncio.wait_for(stop.wait(), spec.schedule.total_seconds())
        except TimeoutError:
            continue
