"""Tell a partner that a file it sent was refused in quarantine: at least once, every try audited.

A partner with ``notify:`` in the manifest gets a **rejection report** for each
file the quarantine keeps in ``refused/`` — JSON, never a byte of the file::

    {"type": "interlock.files.rejection", "integration": "...", "file": "...",
     "sha256": "...", "size": 123, "received_at": "...", "reasons": ["..."],
     "correlation_id": "rej_..."}

by each way it declared: ``drop_outbox`` (written as ``NAME.HASH.rejected.json``,
a long NAME cut to fit the name limit (:func:`report_name`), into
``root/drop-outbox/PARTNER/``, which the drop server serves the partner
read-only as ``/rejected``), ``sftp_path`` (uploaded to the partner's SFTP
server, host key pinned, under a temporary name then renamed) and
``webhook`` (a ``POST`` through :mod:`interlock.outbound`, TLS verified, signed
by the ``auth`` the face hands in — RFC 9421, Interlock's signing key; the
``Idempotency-Key`` is the correlation id, the same for every attempt).

Delivery state is kept per refused file in ``root/notify/INTEGRATION/H-NAME.json``
(0600), written **before** the first attempt (``pending``) and after each one,
so a crash leaves it pending for :meth:`Notifier.resume`. Each way is tried up
to ``attempts`` times, waiting ``backoff``, then twice as long, and so on (at
most an hour) before it is marked ``failed``; each attempt is one audit entry
``files.notify`` (success or failure, the way and attempt in ``details``).
Nothing here touches the refused file or its reasons: a failure to notify never
releases a file and never loses the refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import ssl
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import structlog

from interlock.audit import AuditEntry, AuditSink, Outcome
from interlock.clock import Clock, utc_now
from interlock.config.files import Partner, PartnerNotify
from interlock.config.manifest import Manifest
from interlock.errors import InterlockError
from interlock.files.quarantine import MAX_NAME_BYTES
from interlock.outbound import Timeouts, outbound_async_client

__all__ = ["REPORT_SUFFIX", "Notifier", "NotifyError", "Way", "report", "report_name", "summary"]

Way = Literal["drop", "sftp", "webhook"]
REPORT_SUFFIX: Final = ".rejected.json"
_MAX_WAIT: Final = timedelta(hours=1)
_TIMEOUT: Final = 30.0
_log = structlog.get_logger(__name__)

#: Uploads a report to the partner's SFTP server: ``(partner, directory, name, data)``.
SftpUpload = Callable[[Partner, str, str, bytes], Any]


class NotifyError(InterlockError):
    """One attempt to notify a partner failed (the message says why, never the file)."""

    code = "partner_notification_failed"


def report_name(file: str, sha256: str) -> str:
    """The report's file name: ``NAME.HASH16.rejected.json`` (one per refused content).

    It stays within :data:`~interlock.files.quarantine.MAX_NAME_BYTES`, which the
    drop server's ``/rejected`` and the SFTP upload check it against: a NAME too
    long for that is cut and marked ``~`` and 8 hex of its own SHA-256, so two
    long names sharing their start still get reports of their own.
    """
    tail = f".{sha256[:16]}{REPORT_SUFFIX}"
    if _bytes(file + tail) <= MAX_NAME_BYTES:
        return file + tail
    mark = "~" + hashlib.sha256(file.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    cut = file
    while _bytes(cut + mark + tail) > MAX_NAME_BYTES:
        cut = cut[:-1]
    return cut + mark + tail


def _bytes(name: str) -> int:
    return len(name.encode("utf-8", "surrogatepass"))


def report(integration: str, facts: Mapping[str, Any]) -> bytes:
    """The rejection report of one refused file (its ``.reasons.json`` facts), as JSON."""
    document = {
        "type": "interlock.files.rejection",
        "integration": integration,
        "file": facts["file"],
        "sha256": facts["sha256"],
        "size": facts["size"],
        "received_at": facts["refused_at"],
        "reasons": list(facts["reasons"]),
        "correlation_id": correlation_id(facts),
    }
    return json.dumps(document, ensure_ascii=False, indent=2).encode() + b"\n"


def correlation_id(facts: Mapping[str, Any]) -> str:
    """The refusal's correlation id (records older than it get one from their hash)."""
    given = facts.get("correlation_id")
    return given if isinstance(given, str) else f"rej_{str(facts['sha256'])[:24]}"


class Notifier:
    """Notifies the manifest's partners of refused files (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        *,
        audit: AuditSink,
        sftp_upload: SftpUpload | None = None,
        trust: Callable[[str], ssl.SSLContext] | None = None,
        auth: Callable[[], httpx.Auth] | None = None,
        now: Clock = utc_now,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        """``sftp_upload``, ``trust`` and ``auth`` are the face's: the SFTP upload with the
        partner's key from the vault, a manifest trust anchor as a verifying context, and
        the webhook's request signer (RFC 9421). A way lacking its part fails each attempt."""
        self._root = root
        self._manifest = manifest
        self._audit = audit
        self._sftp_upload = sftp_upload
        self._trust = trust
        self._auth = auth
        self._now = now
        self._sleep = sleep
        self._tasks: set[asyncio.Task[None]] = set()

    def settings(self, integration: str) -> tuple[str, PartnerNotify] | None:
        """The partner of ``integration`` and its ``notify:``, or None when it wants none."""
        flow = self._manifest.integrations.get(integration)
        if flow is None or flow.files is None:
            return None
        partner = self._manifest.partners.get(flow.files.partner)
        if partner is None or partner.notify is None:
            return None
        return flow.files.partner, partner.notify

    def outbox(self, partner: str) -> Path:
        """The partner's reports for the drop server's ``/rejected`` (created 0700)."""
        path = self._root / "drop-outbox" / partner
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def state(self, integration: str, stored: str) -> dict[str, Any] | None:
        """The delivery state of the refused file stored as ``stored`` (``H-NAME``), if any."""
        path = self._state_path(integration, stored)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return loaded if isinstance(loaded, dict) else None

    def forget(self, integration: str, stored: str) -> None:
        """Drop the state and the drop-outbox report of a purged refused file."""
        state = self.state(integration, stored)
        if state is not None and isinstance(state.get("outbox"), str):
            Path(state["outbox"]).unlink(missing_ok=True)
        self._state_path(integration, stored).unlink(missing_ok=True)

    async def refused(self, integration: str, stored: str, facts: Mapping[str, Any]) -> None:
        """Record the refusal as pending for each way, then deliver in the background."""
        wanted = self.settings(integration)
        if wanted is None:
            return
        partner, notify = wanted
        ways: dict[str, dict[str, Any]] = {
            way: {"state": "pending", "attempts": 0, "at": None, "error": None}
            for way in _ways(notify)
        }
        state: dict[str, Any] = {
            "partner": partner,
            "correlation_id": correlation_id(facts),
            "facts": dict(facts),
            "ways": ways,
        }
        if notify.drop_outbox:
            state["outbox"] = str(
                self.outbox(partner) / report_name(facts["file"], facts["sha256"])
            )
        await asyncio.to_thread(self._save, integration, stored, state)
        self._spawn(integration, stored)

    async def resume(self, integration: str) -> int:
        """Deliver again every report of ``integration`` not yet delivered; how many."""
        folder = self._root / "notify" / integration
        count = 0
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            stored = path.name.removesuffix(".json")
            state = self.state(integration, stored) or {}
            if any(way["state"] != "sent" for way in state.get("ways", {}).values()):
                for way in state["ways"].values():
                    if way["state"] == "failed":
                        way["state"], way["attempts"] = "pending", 0
                await asyncio.to_thread(self._save, integration, stored, state)
                await self.deliver(integration, stored)
                count += 1
        return count

    async def wait(self) -> None:
        """Wait for every delivery started in the background."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def deliver(self, integration: str, stored: str) -> None:
        """Try each pending way of one refused file until sent or out of attempts."""
        state = self.state(integration, stored)
        wanted = self.settings(integration)
        if state is None or wanted is None:
            return
        _, notify = wanted
        body = report(integration, state["facts"])
        for way, progress in state["ways"].items():
            while progress["state"] == "pending":
                if progress["attempts"]:
                    wait = notify.backoff * (2 ** (progress["attempts"] - 1))
                    await self._sleep(min(wait, _MAX_WAIT).total_seconds())
                progress["attempts"] += 1
                error: str | None = None
                try:
                    await self._attempt(way, notify, state, body)
                except NotifyError as failed:
                    error = str(failed)
                progress["at"] = self._now().isoformat()
                progress["error"] = error
                if error is None:
                    progress["state"] = "sent"
                elif progress["attempts"] >= notify.attempts:
                    progress["state"] = "failed"
                await asyncio.to_thread(self._save, integration, stored, state)
                await self._record(integration, state, way, progress)

    def _spawn(self, integration: str, stored: str) -> None:
        task = asyncio.create_task(self.deliver(integration, stored))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        """A delivery ended; one that raised (the audit log down) is logged, stays pending."""
        self._tasks.discard(task)
        if not task.cancelled() and (failed := task.exception()) is not None:
            _log.error("partner_notification_interrupted", error=type(failed).__name__)

    async def _attempt(
        self, way: str, notify: PartnerNotify, state: Mapping[str, Any], body: bytes
    ) -> None:
        facts = state["facts"]
        name = report_name(facts["file"], facts["sha256"])
        if way == "drop":
            await asyncio.to_thread(_write_report, Path(state["outbox"]), body)
        elif way == "sftp":
            partner = self._manifest.partners[state["partner"]]
            if self._sftp_upload is None or notify.sftp_path is None:
                raise NotifyError("no SFTP client was given to the notifier")
            try:
                await self._sftp_upload(partner, notify.sftp_path, name, body)
            except InterlockError as exc:
                raise NotifyError(str(exc)) from None
        else:
            await self._post(notify, state, body)

    async def _post(self, notify: PartnerNotify, state: Mapping[str, Any], body: bytes) -> None:
        webhook = notify.webhook
        if webhook is None or self._trust is None or self._auth is None:
            raise NotifyError("no webhook trust or signer was given to the notifier")
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": str(state["correlation_id"]),
        }
        try:
            context = self._trust(webhook.ca)
            async with (
                outbound_async_client(
                    trust=context, timeouts=Timeouts.every(_TIMEOUT), auth=self._auth()
                ) as client,
                client.stream("POST", webhook.url, content=body, headers=headers) as response,
            ):
                status = response.status_code  # the answer's body is never read
        except httpx.TimeoutException:
            raise NotifyError("the webhook did not answer in time") from None
        except httpx.TransportError as exc:
            raise NotifyError(_transport(exc)) from None
        except (InterlockError, ValueError) as exc:
            raise NotifyError(
                f"the webhook request could not be made ({type(exc).__name__})"
            ) from None
        if not 200 <= status < 300:
            raise NotifyError(f"the webhook answered HTTP {status}")

    async def _record(
        self, integration: str, state: Mapping[str, Any], way: str, progress: Mapping[str, Any]
    ) -> None:
        facts = state["facts"]
        await self._audit.record_async(
            AuditEntry(
                time=self._now(),
                actor="system:files",
                action="files.notify",
                integration=integration,
                outcome=Outcome(result="success" if progress["error"] is None else "failure"),
                reason=progress["error"],
                details={
                    "partner": state["partner"],
                    "way": way,
                    "attempt": progress["attempts"],
                    "state": progress["state"],
                    "file": facts["file"],
                    "sha256": facts["sha256"],
                    "correlation_id": state["correlation_id"],
                },
            )
        )

    def _state_path(self, integration: str, stored: str) -> Path:
        return self._root / "notify" / integration / f"{stored}.json"

    def _save(self, integration: str, stored: str, state: Mapping[str, Any]) -> None:
        path = self._state_path(integration, stored)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{os.urandom(8).hex()}.part")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(json.dumps(state).encode())
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(path)
        finally:
            temporary.unlink(missing_ok=True)


def _ways(notify: PartnerNotify) -> list[Way]:
    ways: list[Way] = []
    if notify.drop_outbox:
        ways.append("drop")
    if notify.sftp_path is not None:
        ways.append("sftp")
    if notify.webhook is not None:
        ways.append("webhook")
    return ways


def _write_report(path: Path, body: bytes) -> None:
    """Write the report once (0600); a retry finding it there is done."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{os.urandom(8).hex()}.part")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    except OSError as exc:
        raise NotifyError(f"the report could not be written ({type(exc).__name__})") from None
    finally:
        temporary.unlink(missing_ok=True)


def _transport(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "the webhook's TLS certificate did not verify against its ca"
        if isinstance(cause, ssl.SSLError):
            return "the TLS handshake with the webhook failed"
        cause = cause.__cause__ or cause.__context__
    return f"the webhook could not be reached ({type(exc).__name__})"


def summary(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Whether and when the partner was told, for ``interlock files quarantine --json``.

    ``state``: ``sent`` (every way delivered; ``at`` the last delivery),
    ``failed`` (some way ran out of attempts), else ``pending``; None when the
    partner wants no notification (or the file was refused before ``notify:``).
    """
    if state is None:
        return None
    ways = [
        {
            "way": way,
            "state": progress["state"],
            "attempts": progress["attempts"],
            "at": progress["at"],
            "error": progress["error"],
        }
        for way, progress in state.get("ways", {}).items()
    ]
    states = {way["state"] for way in ways}
    overall = "failed" if "failed" in states else "pending" if "pending" in states else "sent"
    sent = [way["at"] for way in ways if way["state"] == "sent" and way["at"]]
    return {
        "state": overall,
        "at": max(sent) if overall == "sent" and sent else None,
        "correlation_id": state.get("correlation_id"),
        "ways": ways,
    }
