"""The quarantine: every received file is written, checked, then released or kept with reasons.

Layout under ``root`` (each directory 0700, each file 0600)::

    quarantine/<integration>/NAME          being checked
    processing/<integration>/NAME          accepted, byte for byte as received
    refused/<integration>/H-NAME           refused (H: first 16 hex of its SHA-256)
    refused/<integration>/H-NAME.reasons.json

A file is all or nothing: it is accepted whole or refused whole, so an audit
outcome is ``success`` or ``failure``, never ``partial_failure``. Nothing is
ever overwritten: a name already in processing is refused (the new copy kept
in refused); a refused file is stored under its content hash, so the same bad
file sent twice is kept once (and audited twice).

A name is refused before anything is written when it is empty, holds a path
separator (``/`` or ``\\``), starts with a dot (``.``, ``..``, hidden
files), holds a character that is not printable (controls, bidirectional
overrides that disguise an extension, spaces other than the ASCII space), is
longer than :data:`MAX_NAME_BYTES` bytes of UTF-8 (stricter than the 255 of
most file systems, so ``H-`` and ``.reasons.json`` still fit), or ends in
``.reasons.json``.

Every file is one audit entry, action ``files.receive``; the audit entry is
made durable before the file moves on, so if the audit log is down the file
stays in quarantine and the error propagates (fail closed). Such a leftover
blocks its name ("already being checked") until an operator moves it; nothing
re-checks it on its own yet. Only another process sharing ``root`` can make a
second entry for one file: its copy reached processing while this one was
checked, and the refusal is recorded after the success.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from interlock.audit import AuditEntry, AuditSink, Outcome, Volume
from interlock.clock import Clock, utc_now
from interlock.config.files import FilesSpec
from interlock.config.manifest import Integration, Manifest
from interlock.config.units import format_duration
from interlock.crypto.cms import CmsError, Peer
from interlock.errors import ConfigError
from interlock.files.as2_profile import signer_peer
from interlock.files.as2_revocation import Revocation, verify_signed_file
from interlock.files.inspection import Detected, check_content, sniff
from interlock.files.names import suggest_file_flow
from interlock.validation.errors import echo
from interlock.validation.schema import RequestSchema, SchemaError, compile_schema
from interlock.validation.xml_body import XsdSchema, load_xsd

if TYPE_CHECKING:  # notify names its reports within this module's name limit
    from interlock.files.notify import Notifier

__all__ = ["MAX_NAME_BYTES", "Quarantine", "Verdict", "check_name", "move_new"]

MAX_NAME_BYTES: Final = 200
_REASONS: Final = ".reasons.json"
_MAX_SIDECAR: Final = 1024
_MAX_SIGNATURE: Final = 64 * 1024
_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}")
_MAX_REASON: Final = 2000
_DUPLICATE: Final = "a file of this name is already in processing"


@dataclass(frozen=True)
class Verdict:
    """What the quarantine decided about one file.

    ``reasons`` say why it was refused (empty when accepted) and never quote
    its content. ``records``: CSV data rows (the header excluded when
    ``csv_columns`` declares one), JSON array items (1 for any other value),
    XML children of the root, EDI messages, 0 for binary or a refused file.
    ``detected`` is what the bytes are (:func:`~interlock.files.inspection.sniff`),
    never what the name says.
    """

    accepted: bool
    reasons: tuple[str, ...]
    sha256: str
    size: int
    records: int
    detected: Detected


def check_name(name: str) -> str | None:
    """Why ``name`` cannot be a file name in the quarantine, or None when it can."""
    problem: str | None = None
    if not name:
        problem = "the file name is empty"
    elif "/" in name or "\\" in name:
        problem = "the file name holds a path separator"
    elif name.startswith("."):
        problem = "the file name starts with a dot"
    elif not name.isprintable():  # Unicode C*, Z* but the ASCII space: controls, bidi, NBSP
        problem = "the file name holds control, invisible or unusual space characters"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        problem = f"the file name is longer than {MAX_NAME_BYTES} bytes"
    elif name.endswith(_REASONS):
        problem = f"the file name ends in {_REASONS}, which the quarantine reserves"
    return problem


class Quarantine:
    """The quarantine of one inbound file integration (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        integration: str,
        *,
        audit: AuditSink,
        now: Clock = utc_now,
        manifest_dir: Path | None = None,
        anchors: Mapping[str, Path] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        """Create the three directories (0700) and compile the integration's schemas once.

        ``notifier``: each file kept in refused is handed to it (after the refusal is
        stored), for the partner's ``notify:`` (:mod:`interlock.files.notify`).

        Raises :class:`~interlock.errors.ConfigError` if ``integration`` has no
        ``files:`` section, its JSON Schema or XSD cannot be used, or it wants
        signed files and the partner's signing certificate cannot be loaded
        (``anchors``: the deployment's ``pki:NAME`` trust anchors).
        """
        flow = manifest.integrations.get(integration)
        if flow is None or flow.files is None:
            hint = suggest_file_flow(manifest, integration)
            raise ConfigError(f"integration {integration!r} has no files: section{hint}")
        self._flow: Integration = flow
        self._spec: FilesSpec = flow.files
        self._name = integration
        self._audit = audit
        self._now = now
        self._notifier = notifier
        self._json_schema = _json_schema(self._spec)
        self._xsd = _xsd(self._spec, manifest_dir)
        self._signer: tuple[Peer, Revocation] | None = None
        if self._spec.signature == "detached-cms":
            self._signer = signer_peer(
                manifest, self._spec, anchors=anchors or {}, base=manifest_dir
            )
        self._quarantine = _directory(root / "quarantine" / integration)
        self._processing = _directory(root / "processing" / integration)
        self._refused = _directory(root / "refused" / integration)

    def inspect(
        self,
        data: bytes,
        *,
        name: str,
        sidecars: Mapping[str, bytes],
        waited: timedelta | None = None,
    ) -> Verdict:
        """Check ``data`` without touching the disk: size, type, encoding, format, checksum.

        ``waited``: the sidecars missing were waited for that long (the drop server).
        """
        spec = self._spec
        reasons: list[str] = []
        detected = sniff(data)
        records = 0
        if (problem := check_name(name)) is not None:
            reasons.append(problem)
        if len(data) > spec.max_size:
            reasons.append(f"the file has {len(data)} bytes; at most {spec.max_size} are accepted")
        else:  # an oversized file is not parsed at all
            findings = check_content(data, spec, json_schema=self._json_schema, xsd=self._xsd)
            reasons.extend(findings.reasons)
            records = findings.records
        digest = hashlib.sha256(data).hexdigest()
        if spec.checksum == "sha256-sidecar":
            reasons.extend(_sidecar_problem(digest, name, sidecars, waited))
        if self._signer is not None:
            reasons.extend(
                _signature_problem(data, name, sidecars, self._signer, self._now(), waited=waited)
            )
        accepted = not reasons
        return Verdict(
            accepted, tuple(reasons), digest, len(data), records if accepted else 0, detected
        )

    async def accept(
        self,
        name: str,
        data: bytes,
        *,
        sidecars: Mapping[str, bytes] | None = None,
        waited: timedelta | None = None,
    ) -> Verdict:
        """Write ``data`` into quarantine, check it, then move it to processing or refused.

        A bad name is refused (and audited) before anything is written. ``waited``:
        how long the drop server waited for the sidecars missing from ``sidecars``.
        """
        if (problem := check_name(name)) is not None:
            verdict = _refusal(data, (problem,))
            await self._record(verdict, echo(name.encode("unicode_escape").decode("ascii")))
            return verdict
        held = self._quarantine / name
        try:
            await asyncio.to_thread(_write_new, held, data)
        except FileExistsError:  # nothing can be kept: the name is taken in quarantine
            verdict = _refusal(data, ("a file of this name is already being checked",))
            await self._record(verdict, name)
            return verdict
        if (self._processing / name).exists():
            verdict = _refusal(data, (_DUPLICATE,))
            await self._record(verdict, name)
            await self._refuse(held, name, verdict)
            return verdict
        verdict = await asyncio.to_thread(
            self.inspect, data, name=name, sidecars=sidecars or {}, waited=waited
        )
        await self._record(verdict, name)  # raises when the audit log is down: the file stays
        if verdict.accepted:
            try:
                await asyncio.to_thread(move_new, held, self._processing / name)
            except FileExistsError:
                # Only another process sharing this root gets here (quarantine/NAME keeps
                # one file per name in here): a second entry records the refusal.
                verdict = _refusal(data, (_DUPLICATE,))
                await self._record(verdict, name)
            else:
                return verdict
        await self._refuse(held, name, verdict)
        return verdict

    async def _refuse(self, held: Path, name: str, verdict: Verdict) -> None:
        stored, facts = await asyncio.to_thread(self._keep_refused, held, name, verdict)
        if self._notifier is not None:
            await self._notifier.refused(self._name, stored, facts)

    def processing(self) -> list[Path]:
        """The accepted files waiting in processing, by name."""
        return sorted(path for path in self._processing.iterdir() if path.is_file())

    def refused(self) -> list[tuple[Path, tuple[str, ...]]]:
        """Each refused file with the reasons it was refused, by name."""
        found: list[tuple[Path, tuple[str, ...]]] = []
        for record in sorted(self._refused.glob("*" + _REASONS)):
            facts = json.loads(record.read_text(encoding="utf-8"))
            found.append((record.with_name(record.name[: -len(_REASONS)]), tuple(facts["reasons"])))
        return found

    def refusals(self) -> list[tuple[str, dict[str, object]]]:
        """Each refused file's stored name (``H-NAME``) and its recorded facts, by name."""
        return [
            (record.name[: -len(_REASONS)], json.loads(record.read_text(encoding="utf-8")))
            for record in sorted(self._refused.glob("*" + _REASONS))
        ]

    def purge(self) -> int:
        """Delete refused files older than ``quarantine_retention``; one audit entry; the count."""
        limit = self._now() - self._spec.quarantine_retention
        purged = 0
        for record in sorted(self._refused.glob("*" + _REASONS)):
            facts = json.loads(record.read_text(encoding="utf-8"))
            if datetime.fromisoformat(facts["refused_at"]) < limit:
                record.with_name(record.name[: -len(_REASONS)]).unlink(missing_ok=True)
                record.unlink()
                if self._notifier is not None:
                    self._notifier.forget(self._name, record.name[: -len(_REASONS)])
                purged += 1
        self._audit.record(
            AuditEntry(
                time=self._now(),
                actor="system:quarantine",
                action="files.purge",
                integration=self._name,
                volume=Volume(records=purged),
                outcome=Outcome(result="success"),
            )
        )
        return purged

    def _keep_refused(
        self, held: Path, name: str, verdict: Verdict
    ) -> tuple[str, dict[str, object]]:
        """Move ``held`` to refused, its reasons written first so no refused file lacks them.

        Returns the stored name and the facts recorded (the first ones when the same
        bytes were refused under this name before)."""
        stored = self._refused / f"{verdict.sha256[:16]}-{name}"
        facts = {
            "file": name,
            "sha256": verdict.sha256,
            "size": verdict.size,
            "detected": verdict.detected,
            "reasons": list(verdict.reasons),
            "refused_at": self._now().isoformat(),
            "correlation_id": "rej_" + secrets.token_hex(12),
        }
        record = stored.with_name(stored.name + _REASONS)
        try:
            _write_new(record, json.dumps(facts).encode())
            move_new(held, stored)
        except FileExistsError:  # the very same bytes were refused under this name before
            held.unlink()
            facts = json.loads(record.read_text(encoding="utf-8"))
        return stored.name, facts

    async def _record(self, verdict: Verdict, shown_name: str) -> None:
        flow = self._flow
        reason = "; ".join(verdict.reasons)
        entry = AuditEntry(
            time=self._now(),
            actor=f"partner:{self._spec.partner}",
            action="files.receive",
            integration=self._name,
            source=flow.source,
            target=flow.target,
            data_categories=tuple(str(category) for category in flow.data_categories),
            volume=Volume(records=verdict.records, bytes=verdict.size),
            outcome=Outcome(result="success" if verdict.accepted else "failure"),
            reason=(reason[: _MAX_REASON - 1] + "…" if len(reason) > _MAX_REASON else reason)
            or None,
            details={"sha256": verdict.sha256, "file": shown_name, "detected": verdict.detected},
        )
        await self._audit.record_async(entry)


def _refusal(data: bytes, reasons: tuple[str, ...]) -> Verdict:
    return Verdict(False, reasons, hashlib.sha256(data).hexdigest(), len(data), 0, sniff(data))


def _missing(what: str, sidecar: str, waited: timedelta | None) -> str:
    if waited is None:
        return f"the {what} file {echo(sidecar)} is missing"
    return f"the {what} file {echo(sidecar)} did not arrive within {format_duration(waited)}"


def _sidecar_problem(
    digest: str, name: str, sidecars: Mapping[str, bytes], waited: timedelta | None
) -> list[str]:
    """The ``NAME.sha256`` sidecar (``sha256sum`` format) must name ``digest``."""
    sidecar = f"{name}.sha256"
    content = sidecars.get(sidecar)
    if content is None:
        return [_missing("checksum", sidecar, waited)]
    words = content[:_MAX_SIDECAR].split()
    claimed = words[0].decode("ascii", "replace") if words and len(content) <= _MAX_SIDECAR else ""
    if _HEX64.fullmatch(claimed) is None:
        return [f"the checksum file {echo(sidecar)} holds no SHA-256 hex digest"]
    if not hmac.compare_digest(claimed.lower().encode(), digest.encode()):
        return ["the SHA-256 checksum does not match the file"]
    return []


def _signature_problem(
    data: bytes,
    name: str,
    sidecars: Mapping[str, bytes],
    signer: tuple[Peer, Revocation],
    at: datetime,
    *,
    waited: timedelta | None,
) -> list[str]:
    """The ``NAME.p7s`` sidecar must be the partner's valid detached CMS signature of ``data``."""
    sidecar = f"{name}.p7s"
    signature = sidecars.get(sidecar)
    if signature is None:
        return [_missing("signature", sidecar, waited)]
    if len(signature) > _MAX_SIGNATURE:
        return [f"the signature file {echo(sidecar)} is larger than {_MAX_SIGNATURE} bytes"]
    try:
        verify_signed_file(data, signature, *signer, at=at)
    except CmsError as refused:
        return [f"the detached signature is refused: {refused.reason}"]
    return []


def _json_schema(spec: FilesSpec) -> RequestSchema | None:
    if spec.schema_ is None:
        return None
    try:
        return compile_schema(spec.schema_)
    except SchemaError as error:
        raise ConfigError(f"the files: schema cannot be used: {error}") from None


def _xsd(spec: FilesSpec, manifest_dir: Path | None) -> XsdSchema | None:
    if spec.xml_schema_file is None:
        return None
    try:
        return load_xsd((manifest_dir or Path.cwd()) / spec.xml_schema_file)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _directory(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.is_symlink() or not path.is_dir():
        raise ConfigError(f"{path} is not a directory")
    path.chmod(0o700)  # mkdir's mode is masked by the umask
    return path


def _write_new(path: Path, data: bytes) -> None:
    """Write ``path`` atomically: a hidden temporary file (0600, fsynced), linked, not renamed."""
    temporary = path.with_name(f".{os.urandom(8).hex()}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(temporary, flags, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        move_new(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def move_new(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` on the same file system; FileExistsError if it is taken."""
    os.link(source, target)  # fails when target exists: no overwrite, unlike rename
    source.unlink()
    directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
