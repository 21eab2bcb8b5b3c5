"""The drop server's uploads, routed to their integration and paired with their sidecars.

A partner's upload goes to the first of its drop integrations whose
``pattern`` takes the name. When that integration declares a checksum
(``NAME.sha256``) or a detached signature (``NAME.p7s``), the file and its
sidecars may arrive in any order: each waits in ``root/waiting/<integration>/``
(0700, files 0600; the arrival time is the file's modification time) until
the last of them arrives, and only then are they handed together to the
quarantine — so a sidecar is never checked as a file of its own, and a file is
never released without the sidecars its integration declares. A name is a
sidecar when its base name (without ``.sha256`` or ``.p7s``) is a file the
integration takes that needs this sidecar, as the SFTP pull decides.

Nothing waits for ever: :meth:`DropSidecars.expire` (run by the drop server
every few seconds) hands a file whose sidecars did not arrive within the
integration's ``sidecar_wait`` to the quarantine, which refuses it ("the
checksum file NAME.sha256 did not arrive within PT15M"), audits it and tells
the partner as for any refused file; a sidecar whose file did not arrive in
that time is deleted, and audited (``files.drop.sidecar``, failure). A second
upload of a name already waiting is refused (and audited): nothing waiting is
ever overwritten.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from interlock.audit.entry import AuditEntry, Outcome
from interlock.audit.sink import AuditSink
from interlock.clock import Clock, utc_now
from interlock.config.files import FilesSpec
from interlock.config.manifest import Manifest
from interlock.config.units import format_duration
from interlock.files.quarantine import Verdict, check_name
from interlock.files.sftp import sidecar_names

__all__ = ["SIDECAR_SUFFIXES", "Arrival", "DropSidecars", "Receiver", "Route", "WaitingFullError"]

SIDECAR_SUFFIXES: Final = (".sha256", ".p7s")


@dataclass(frozen=True)
class Arrival:
    """A file complete with its sidecars (or given up on), for the integration's quarantine."""

    partner: str
    integration: str
    name: str
    data: bytes = field(repr=False)
    sidecars: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    waited: timedelta | None = None  # set when the sidecars missing were waited for in vain


Receiver = Callable[[Arrival], Awaitable[Verdict]]
"""What the drop server hands a file to: the quarantine's accept, in effect."""


@dataclass(frozen=True)
class Route:
    """Where an uploaded name goes: its integration, the file it belongs to, what is needed."""

    integration: str
    spec: FilesSpec
    base: str  # the file's name (the upload's own name unless it is a sidecar)
    needed: tuple[str, ...]  # the sidecar names the file needs

    @property
    def group(self) -> tuple[str, ...]:
        """The file and its sidecars: everything that must arrive."""
        return (self.base, *self.needed)


def route(manifest: Manifest, partner: str, name: str) -> Route | None:
    """The route of ``name`` uploaded by ``partner``, or None when no drop integration takes it."""
    for suffix in SIDECAR_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            found = _integration(manifest, partner, name[: -len(suffix)])
            if found is not None and name in found.needed:
                return found
    return _integration(manifest, partner, name)


def _integration(manifest: Manifest, partner: str, name: str) -> Route | None:
    for flow_name, flow in manifest.integrations.items():
        spec = flow.files
        if spec is None or spec.transport != "drop" or spec.partner != partner:
            continue
        if fnmatch.fnmatchcase(name, spec.pattern):
            return Route(flow_name, spec, name, sidecar_names(spec, name))
    return None


class WaitingFullError(Exception):
    """An upload would take the bytes waiting for their sidecars past ``waiting_limit``."""


class DropSidecars:
    """Routes the drop server's uploads and holds each file until its sidecars arrive."""

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        *,
        receive: Receiver,
        audit: AuditSink,
        now: Clock = utc_now,
    ) -> None:
        """Files wait under ``root/waiting/``; complete ones go to ``receive``."""
        self._root = root
        self._manifest = manifest
        self._receive = receive
        self._audit = audit
        self._now = now
        self._lock = asyncio.Lock()  # what waits is stored, claimed and expired one at a time

    def route(self, partner: str, name: str) -> Route | None:
        """The route of an upload (None: no drop integration of ``partner`` takes ``name``)."""
        return route(self._manifest, partner, name)

    async def arrived(self, partner: str, name: str, data: bytes) -> Verdict | None:
        """Take one completed upload; the quarantine's verdict, or None while its group waits.

        Raises :class:`FileExistsError` when ``name`` is already waiting, and
        :class:`WaitingFullError` when it would take what waits past the
        integration's ``waiting_limit`` (both audited).
        """
        found = self.route(partner, name)
        if found is None:  # the drop server routes at open: only a changed manifest gets here
            raise LookupError(name)
        if not found.needed:
            return await self._receive(Arrival(partner, found.integration, name, data))
        async with self._lock:
            waiting = self._waiting(found.integration)
            group = {part: waiting / part for part in found.group}
            # An upload that completes its group is claimed at once: it never waits.
            completes = all(path.exists() for part, path in group.items() if part != name)
            limit = found.spec.waiting_limit
            if not completes and await self._would_pass(waiting, len(data), limit):
                reason = f"more than {limit} bytes would wait for their sidecars"
                await self._record(partner, found, name, reason)
                raise WaitingFullError(name)
            try:
                await asyncio.to_thread(_write_waiting, waiting / name, data, self._now())
            except FileExistsError:
                await self._record(partner, found, name, "a file of this name is already waiting")
                raise
            if not all(path.exists() for path in group.values()):
                return None
            parts = await asyncio.to_thread(_claim, group)
        sidecars = {part: parts[part] for part in found.needed}
        arrival = Arrival(partner, found.integration, found.base, parts[found.base], sidecars)
        return await self._receive(arrival)

    @staticmethod
    async def _would_pass(waiting: Path, size: int, limit: int) -> bool:
        return await asyncio.to_thread(_waiting_bytes, waiting) + size > limit

    async def expire(self) -> int:
        """Give up on what waited longer than its ``sidecar_wait``; how many groups ended.

        Each group is claimed and handed over in turn: if the quarantine fails (its
        audit log is down), the groups not yet handed over wait for the next turn.
        """
        ended = 0
        now = self._now()
        partners = {
            flow.files.partner
            for flow in self._manifest.integrations.values()
            if flow.files is not None and flow.files.transport == "drop"
        }
        for partner in sorted(partners):
            for found in self._overdue(partner, now.timestamp()):
                async with self._lock:
                    directory = self._root / "waiting" / found.integration
                    present = {p: directory / p for p in found.group if (directory / p).exists()}
                    parts = await asyncio.to_thread(_claim, present)
                if not parts:
                    continue
                ended += 1
                await self._give_up(partner, found, parts)
        return ended

    async def _give_up(self, partner: str, found: Route, parts: Mapping[str, bytes]) -> None:
        """The file to the quarantine without its missing sidecars; lone sidecars deleted."""
        wait = format_duration(found.spec.sidecar_wait)
        if found.base in parts:
            sidecars = {k: v for k, v in parts.items() if k != found.base}
            arrival = Arrival(
                partner,
                found.integration,
                found.base,
                parts[found.base],
                sidecars,
                waited=found.spec.sidecar_wait,
            )
            await self._receive(arrival)
            return
        for orphan in sorted(parts):
            reason = f"the file {found.base} did not arrive within {wait}; its sidecar was deleted"
            await self._record(partner, found, orphan, reason)

    def _overdue(self, partner: str, now: float) -> list[Route]:
        """The groups of ``partner`` whose first arrival is older than their wait."""
        groups: dict[tuple[str, str], tuple[Route, float]] = {}
        for integration in self._drop_integrations(partner):
            directory = self._root / "waiting" / integration
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                found = self.route(partner, path.name)
                if found is None or found.integration != integration or path.is_symlink():
                    continue  # not ours (a changed manifest): left for an operator
                try:
                    arrived = path.stat().st_mtime
                except FileNotFoundError:  # claimed meanwhile (claims run in a thread)
                    continue
                key = (integration, found.base)
                first = min(arrived, groups.get(key, (found, now))[1])
                groups[key] = (found, first)
        return [
            found
            for _, (found, first) in sorted(groups.items())
            if now - first >= found.spec.sidecar_wait.total_seconds()
        ]

    def _drop_integrations(self, partner: str) -> list[str]:
        return [
            name
            for name, flow in self._manifest.integrations.items()
            if flow.files is not None
            and flow.files.transport == "drop"
            and flow.files.partner == partner
        ]

    def _waiting(self, integration: str) -> Path:
        path = self._root / "waiting" / integration
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
        return path

    async def _record(self, partner: str, found: Route, name: str, reason: str) -> None:
        flow = self._manifest.integrations[found.integration]
        await self._audit.record_async(
            AuditEntry(
                time=self._now(),
                actor=f"partner:{partner}",
                action="files.drop.sidecar",
                integration=found.integration,
                source=flow.source,
                target=flow.target,
                outcome=Outcome(result="failure"),
                reason=reason,
                details={"file": name if check_name(name) is None else "(unsafe name)"},
            )
        )


def _waiting_bytes(directory: Path) -> int:
    """The bytes that wait in ``directory`` (its files only; they are few: see the limit)."""
    return sum(entry.stat().st_size for entry in os.scandir(directory) if entry.is_file())


def _write_waiting(path: Path, data: bytes, at: datetime) -> None:
    """Write a new 0600 file (never over one), dated ``at``: its wait starts then."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(path, flags, 0o600)
    try:
        with os.fdopen(descriptor, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.utime(path, (at.timestamp(), at.timestamp()), follow_symlinks=False)


def _claim(parts: Mapping[str, Path]) -> dict[str, bytes]:
    """Read and remove the waiting files (they now belong to the quarantine)."""
    claimed: dict[str, bytes] = {}
    for name, path in parts.items():
        claimed[name] = path.read_bytes()
        path.unlink()
    return claimed
