"""Interlock's SFTP drop server: partners upload files, which go straight to quarantine.

One account per partner with a ``drop:`` section of the manifest, named after
the partner. Authentication is by the partner's public keys only — no
password, no keyboard-interactive, no host-based login. Each partner sees its
own virtual directory ``/`` and nothing else: a path is one plain file name at
that root (``..``, sub-directories, leading dots and control characters are
refused), so no partner can reach another's files or the server's file system.

An upload is spooled to ``root/drop/<partner>/`` (0700) under a name the
server chooses — never the partner's — and when the partner closes the file it
is read back, removed from the spool and handed, as an
:class:`~interlock.files.drop_sidecars.Arrival` of the first drop integration
whose pattern takes its name, to ``receive`` (the quarantine's accept). A name
no drop integration of the partner takes is refused when it is opened. When
the integration declares a checksum or signature sidecar, the file and its
sidecars are paired first (:mod:`interlock.files.drop_sidecars`): whichever
arrives first waits, and the close of the last one carries the verdict. A
refused file fails the partner's close with a generic "refused" status; the
reasons stay in quarantine.

An ``upload_only`` account (the default) may do nothing else: reading,
listing, removing, renaming, making directories, links or symlinks and
changing attributes are each refused with SFTP "permission denied". An
account declared ``upload_only: false`` may also stat and list its root, which
is always empty: received files are in quarantine, never left on the server.

A partner whose ``notify:`` says ``drop_outbox: true`` may also list and read
(nothing else) ``/rejected``: the rejection reports
(``NAME.HASH.rejected.json``, :mod:`interlock.files.notify`) of the files it
sent that the quarantine refused, whatever ``upload_only`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import asyncssh

from interlock.audit.entry import AuditEntry, Outcome
from interlock.audit.sink import AuditSink
from interlock.clock import Clock, utc_now
from interlock.config.files import FilesSpec
from interlock.config.manifest import Manifest
from interlock.errors import InterlockError
from interlock.files.drop_sidecars import Arrival, DropSidecars, Receiver, WaitingFullError
from interlock.files.notify import REPORT_SUFFIX
from interlock.files.quarantine import check_name
from interlock.logs import get_logger

__all__ = ["Arrival", "DropServer", "Receiver"]

_log = get_logger("interlock.files.drop_server")
_EXPIRY_CHECK_SECONDS: Final = 5.0
# A session's first refusals are one audit entry each; the rest are counted in one entry
# when it ends, so a partner cannot flood the audit trail with refused operations.
_AUDITED_REFUSALS: Final = 20
# Files one partner may have open for writing at once, over all its connections and
# sessions: each is spooled to disk up to max_size, so the spool a partner can fill is
# bounded by this times max_size.
_OPEN_UPLOADS: Final = 16

_DEFAULT_MAX_SIZE = FilesSpec.model_fields["max_size"].default


@dataclass(frozen=True)
class _Account:
    keys: frozenset[bytes]  # the partner's public keys, as SSH wire blobs
    upload_only: bool
    max_size: int
    outbox: bool = False  # notify.drop_outbox: /rejected may be listed and read


@dataclass
class _Report:
    fd: int
    size: int


@dataclass
class _Upload:
    name: str
    fd: int
    spool: Path
    size: int = 0
    too_large: bool = False
    done: bool = field(default=False)


def _accounts(manifest: Manifest) -> dict[str, _Account]:
    accounts: dict[str, _Account] = {}
    for name, partner in manifest.partners.items():
        if partner.drop is None:
            continue
        sizes = [
            integration.files.max_size
            for integration in manifest.integrations.values()
            if integration.files is not None
            and integration.files.partner == name
            and integration.files.transport == "drop"
        ]
        keys = frozenset(asyncssh.import_public_key(k).public_data for k in partner.drop.keys)
        outbox = partner.notify is not None and partner.notify.drop_outbox
        accounts[name] = _Account(
            keys, partner.drop.upload_only, max(sizes, default=_DEFAULT_MAX_SIZE), outbox
        )
    return accounts


def _denied() -> asyncssh.SFTPError:
    return asyncssh.SFTPPermissionDenied("permission denied")


def _file_name(path: bytes) -> str | None:
    """The plain file name a path names at the partner's root, or None for the root itself."""
    try:
        text = path.decode("utf-8")
    except UnicodeDecodeError:
        raise _denied() from None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts:
        return None
    if len(parts) != 1:
        raise _denied()
    name = parts[0]
    if check_name(name) is not None:  # the quarantine's rule: no dots first, no controls
        raise _denied()
    return name


_REJECTED = "rejected"


def _report_path(path: bytes) -> str | None:
    """``""`` for ``/rejected``, the report's name for ``/rejected/NAME``, else None."""
    try:
        parts = [p for p in path.decode("utf-8").split("/") if p not in ("", ".")]
    except UnicodeDecodeError:
        return None
    if not parts or parts[0] != _REJECTED or len(parts) > 2:
        return None
    if len(parts) == 1:
        return ""
    name = parts[1]
    if check_name(name) is not None or not name.endswith(REPORT_SUFFIX):
        raise _denied()
    return name


class _Session(asyncssh.SSHServer):
    """One connection's authentication: the partner's keys only; each login audited."""

    def __init__(self, accounts: dict[str, _Account], audit: AuditSink, now: Clock) -> None:
        self._accounts = accounts
        self._audit = audit
        self._now = now
        self._user: str | None = None
        self._authenticated = False

    def begin_auth(self, username: str) -> bool:
        self._user = username
        return True  # every login must authenticate

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        account = self._accounts.get(username)
        return account is not None and key.public_data in account.keys

    def auth_completed(self) -> None:
        self._authenticated = True
        self._record("success", None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._user is not None and not self._authenticated:
            self._record("failure", "public-key authentication failed")

    def _record(self, result: Literal["success", "failure"], reason: str | None) -> None:
        """One audit entry per login attempt that named a user (never the key itself)."""
        user = self._user or ""
        known = user in self._accounts
        # The user name is the caller's text: shown only when it is a partner's account.
        shown = user if known else "".join(c for c in user[:64] if c.isprintable())
        self._audit.record_later(
            AuditEntry(
                time=self._now(),
                actor=f"partner:{user}" if known else "anonymous",
                action="files.drop.login",
                outcome=Outcome(result=result),
                reason=reason,
                details={"user": shown or "(empty)", "known_partner": known},
            )
        )


class _DropSFTP(asyncssh.SFTPServer):
    """A partner's SFTP session: uploads into quarantine, everything else refused."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], server: DropServer) -> None:
        super().__init__(chan)
        partner = chan.get_extra_info("username")
        account = server.accounts.get(partner) if isinstance(partner, str) else None
        if account is None:  # authentication let it in, so it is one of ours
            raise InterlockError("drop server session without a partner account")
        self._partner: str = partner
        self._account = account
        self._server = server
        self._uploads: set[int] = set()
        self._open: dict[int, _Upload] = {}
        self._refusals = 0

    # -- uploads ------------------------------------------------------------

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        try:
            report = _report_path(path) if self._account.outbox else None
            name = None if report else _file_name(path)
        except asyncssh.SFTPError as error:
            raise self._refused(error, "open", "not a plain file name at the root", path) from None
        if report:
            writes = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC
            if pflags & writes or pflags & asyncssh.FXF_APPEND or not pflags & asyncssh.FXF_READ:
                raise self._refused(_denied(), "open", "a rejection report is read-only", path)
            try:
                fd = os.open(
                    self._server.outbox(self._partner) / report, os.O_RDONLY | os.O_NOFOLLOW
                )
            except OSError:
                raise asyncssh.SFTPNoSuchFile("no such report") from None
            return _Report(fd, os.fstat(fd).st_size)
        if name is None or pflags & asyncssh.FXF_READ or not pflags & asyncssh.FXF_WRITE:
            raise self._refused(_denied(), "open", "only writing a file is allowed", path)
        if self._server.sidecars.route(self._partner, name) is None:
            refused = asyncssh.SFTPFailure("no drop integration takes this file name")
            raise self._refused(refused, "open", "no drop integration takes the name", path)
        if not self._server.take_upload(self._partner):
            refused = asyncssh.SFTPFailure("too many files open")
            reason = f"more than {_OPEN_UPLOADS} files open at once"
            raise self._refused(refused, "open", reason, path)
        try:
            fd, spool = tempfile.mkstemp(prefix=".upload-", dir=self._server.spool(self._partner))
        except BaseException:
            self._server.give_upload(self._partner)
            raise
        upload = _Upload(name, fd, Path(spool))
        self._open[id(upload)] = upload
        return upload

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        upload = self._upload(file_obj)
        if offset + len(data) > self._account.max_size:
            refused = asyncssh.SFTPFailure("file too large")
            if upload.too_large:  # refused and audited at its first write past the limit
                raise refused
            upload.too_large = True
            reason = f"larger than {self._account.max_size} bytes"
            raise self._refused(refused, "write", reason, upload.name.encode("utf-8"))
        written = os.pwrite(upload.fd, data, offset)
        upload.size = max(upload.size, offset + written)
        return written

    async def close(self, file_obj: object) -> None:
        if isinstance(file_obj, _Report):
            os.close(file_obj.fd)
            return
        upload = self._upload(file_obj)
        del self._open[id(upload)]
        self._server.give_upload(self._partner)
        try:
            data = b"" if upload.too_large else upload.spool.read_bytes()
        finally:
            _discard(upload)
        if upload.too_large:
            raise asyncssh.SFTPFailure("file too large")
        try:
            verdict = await self._server.sidecars.arrived(self._partner, upload.name, data)
        except (FileExistsError, WaitingFullError):  # audited by the sidecars
            raise asyncssh.SFTPFailure("file refused") from None
        except LookupError:  # the manifest changed while it was uploaded
            refused = asyncssh.SFTPFailure("file refused")
            name = upload.name.encode("utf-8")
            raise self._refused(
                refused, "close", "no drop integration takes it now", name
            ) from None
        if verdict is not None and not verdict.accepted:  # None: waits for its sidecars
            raise asyncssh.SFTPFailure("file refused")

    def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        if isinstance(file_obj, _Report):
            return _report_attrs(file_obj.size)
        upload = self._upload(file_obj)
        return asyncssh.SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, size=upload.size)

    def fsync(self, file_obj: object) -> None:
        os.fsync(self._upload(file_obj).fd)

    def exit(self) -> None:
        for upload in self._open.values():  # the partner left without closing: dropped
            _discard(upload)
            self._server.give_upload(self._partner)
        self._open.clear()
        if self._refusals > _AUDITED_REFUSALS:
            more = self._refusals - _AUDITED_REFUSALS
            self._server.record_refusal(
                self._partner, "(several)", f"{more} more refused operations in the session", ""
            )

    def _refused(
        self, error: asyncssh.SFTPError, operation: str, reason: str, path: bytes
    ) -> asyncssh.SFTPError:
        """Audit a refused operation (see ``_AUDITED_REFUSALS``); the error for the partner."""
        self._refusals += 1
        if self._refusals <= _AUDITED_REFUSALS:
            self._server.record_refusal(self._partner, operation, reason, _shown(path))
        return error

    def _deny(self, operation: str, path: bytes = b"") -> asyncssh.SFTPError:
        """Permission denied for ``operation``, which this server never allows; audited."""
        return self._refused(_denied(), operation, f"{operation} is not allowed", path)

    def _upload(self, file_obj: object) -> _Upload:
        if not isinstance(file_obj, _Upload) or id(file_obj) not in self._open:
            raise _denied()
        return file_obj

    # -- the root, for accounts that may look --------------------------------

    def realpath(self, path: bytes) -> bytes:
        if self._account.outbox and (report := _report_path(path)) is not None:
            return posixpath.join("/", _REJECTED, report).rstrip("/").encode("utf-8")
        name = _file_name(path)
        return b"/" if name is None else posixpath.join("/", name).encode("utf-8")

    def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        if self._account.outbox and (report := _report_path(path)) is not None:
            if not report:
                return asyncssh.SFTPAttrs(
                    type=asyncssh.FILEXFER_TYPE_DIRECTORY, permissions=0o40500
                )
            try:
                found = (self._server.outbox(self._partner) / report).lstat()
            except OSError:
                raise asyncssh.SFTPNoSuchFile("no such report") from None
            return _report_attrs(found.st_size)
        if self._account.upload_only or _file_name(path) is not None:
            raise _denied()
        return asyncssh.SFTPAttrs(type=asyncssh.FILEXFER_TYPE_DIRECTORY, permissions=0o40700)

    lstat = stat

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        if self._account.outbox and _report_path(path) == "":
            for entry in (b".", b".."):
                yield asyncssh.SFTPName(entry, attrs=self.stat(b"/" + _REJECTED.encode()))
            for report in sorted(self._server.outbox(self._partner).iterdir()):
                if report.name.endswith(REPORT_SUFFIX) and report.is_file():
                    attrs = _report_attrs(report.stat().st_size)
                    yield asyncssh.SFTPName(report.name.encode("utf-8"), attrs=attrs)
            return
        if self._account.upload_only:
            raise self._deny("list", path)
        if _file_name(path) is not None:
            raise _denied()
        for entry in (b".", b".."):
            yield asyncssh.SFTPName(entry, attrs=self.stat(b"/"))

    # -- refused, whatever the account (audited; statvfs is not, clients ask it unprompted)

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if isinstance(file_obj, _Report):
            return os.pread(file_obj.fd, size, offset)
        raise self._deny("read")

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise self._deny("setstat", path)

    def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise self._deny("setstat", path)

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        raise self._deny("setstat")

    def remove(self, path: bytes) -> None:
        raise self._deny("remove", path)

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise self._deny("mkdir", path)

    def rmdir(self, path: bytes) -> None:
        raise self._deny("rmdir", path)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        raise self._deny("rename", oldpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        raise self._deny("rename", oldpath)

    def readlink(self, path: bytes) -> bytes:
        raise self._deny("readlink", path)

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise self._deny("symlink", newpath)

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise self._deny("link", newpath)

    def statvfs(self, path: bytes) -> asyncssh.SFTPVFSAttrs:
        raise _denied()

    def fstatvfs(self, file_obj: object) -> asyncssh.SFTPVFSAttrs:
        raise _denied()


def _shown(path: bytes) -> str:
    """A path the partner sent, for the audit: printable characters only, at most 200."""
    text = path.decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in text[:200])


def _report_attrs(size: int) -> asyncssh.SFTPAttrs:
    return asyncssh.SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, size=size, permissions=0o100400)


def _discard(upload: _Upload) -> None:
    if not upload.done:
        upload.done = True
        os.close(upload.fd)
        with contextlib.suppress(FileNotFoundError):
            upload.spool.unlink()


class DropServer:
    """Interlock's SFTP drop server for the manifest's partners with a ``drop:`` account."""

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        *,
        host_key: bytes,
        receive: Receiver,
        audit: AuditSink,
        now: Clock = utc_now,
    ) -> None:
        """Serve the manifest's drop accounts; ``host_key`` is the server's private key.

        Every login attempt that names a user is an audit entry in ``audit``
        (``files.drop.login``, success or failure); the quarantine audits each
        file it is handed.
        """
        self.accounts = _accounts(manifest)
        self.sidecars = DropSidecars(root, manifest, receive=receive, audit=audit, now=now)
        self._root = root
        self._host_key = asyncssh.import_private_key(host_key)
        self._audit = audit
        self._now = now
        self._listener: asyncssh.SSHAcceptor | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._uploads: Counter[str] = Counter()  # files open for writing, by partner

    def take_upload(self, partner: str) -> bool:
        """Count one more file open for writing by ``partner``; False at its limit (16)."""
        if self._uploads[partner] >= _OPEN_UPLOADS:
            return False
        self._uploads[partner] += 1
        return True

    def give_upload(self, partner: str) -> None:
        """One of ``partner``'s files open for writing was closed or dropped."""
        self._uploads[partner] -= 1
        if self._uploads[partner] <= 0:
            del self._uploads[partner]

    def record_refusal(self, partner: str, operation: str, reason: str, path: str) -> None:
        """One audit entry for an SFTP operation the server refused (``files.drop.refused``)."""
        name = path.lstrip("/")  # the integration only for a plain name at the root
        plain = name and "/" not in name and check_name(name) is None
        found = self.sidecars.route(partner, name) if plain else None
        self._audit.record_later(
            AuditEntry(
                time=self._now(),
                actor=f"partner:{partner}",
                action="files.drop.refused",
                integration=found.integration if found is not None else None,
                outcome=Outcome(result="failure"),
                reason=reason,
                details={"operation": operation, "path": path, "partner": partner},
            )
        )

    async def expire(self) -> int:
        """Refuse files whose sidecars are overdue, delete overdue lone sidecars; the count."""
        return await self.sidecars.expire()

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(_EXPIRY_CHECK_SECONDS)
            try:
                await self.expire()
            except (InterlockError, OSError) as exc:  # retried at the next turn
                _log.warning("drop_sidecar_expiry_failed", error=type(exc).__name__)

    def spool(self, partner: str) -> Path:
        """The partner's spool directory for uploads in flight (created 0700)."""
        path = self._root / "drop" / partner
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def outbox(self, partner: str) -> Path:
        """The partner's rejection reports, served read-only as ``/rejected``."""
        return self._root / "drop-outbox" / partner

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: any free port) and return the port."""
        accounts, audit, now = self.accounts, self._audit, self._now
        self._listener = await asyncssh.listen(
            host,
            port,
            server_factory=lambda: _Session(accounts, audit, now),
            server_host_keys=[self._host_key],
            sftp_factory=lambda chan: _DropSFTP(chan, self),
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=False,
        )
        self._expiry = asyncio.create_task(self._expire_forever())
        return int(self._listener.get_port())

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
            self._expiry = None
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
