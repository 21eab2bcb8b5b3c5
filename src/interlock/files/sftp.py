"""The SFTP client: pull from and push to a partner's server, its host key pinned.

Every connection checks the server's host key against the keys pinned in the
manifest (:func:`~interlock.files.host_keys.known_hosts`); a key not among them
fails closed with :class:`~interlock.files.host_keys.HostKeyError` naming the
offered fingerprint, before authentication and before any file moves.
Interlock authenticates with its private key for the partner (from the vault,
handed in as bytes), never a password; no OpenSSH configuration file, agent,
``~/.ssh`` key or X.509 trust in ``~/.ssh`` is consulted
(:func:`~interlock.files.host_keys.client_options`).

:func:`pull` lists ``spec.remote_path``, downloads each regular file matching
``spec.pattern`` (at most ``spec.max_size + 1`` bytes, so an oversized file is
refused by the quarantine without filling memory) with the sidecars its
checks need, and hands it to ``receive``. A file the quarantine **accepted**
is then **deleted** on the partner's server (with its sidecars); a refused one
is left there untouched, for the partner to see and replace.

:func:`push` uploads each file under a temporary dot-name in the same
directory, then renames it into place, so the partner never sees a partial
file; an existing file of the same name is never overwritten.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import posixpath
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager

import asyncssh

from interlock.config.files import FilesSpec, SftpPartner
from interlock.errors import InterlockError
from interlock.files.host_keys import (
    HostKeyError,
    client_options,
    fingerprint,
    key_line,
    known_hosts,
)
from interlock.files.quarantine import Verdict, check_name

__all__ = ["Receive", "TransferError", "pull", "push", "sidecar_names", "upload_report"]

Receive = Callable[[str, bytes, Mapping[str, bytes]], Awaitable[Verdict]]
"""Where a pulled file goes: ``(name, data, sidecars)`` → the quarantine's verdict."""

_SIDECAR_LIMIT = 64 * 1024
_CONNECT_TIMEOUT = 30.0


class TransferError(InterlockError):
    """An SFTP transfer with a partner failed (connection, login or file operation)."""

    code = "sftp_transfer_failed"


class _PinnedClient(asyncssh.SSHClient):
    """Remembers the host key a server offered that was not among the pinned ones."""

    offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = key
        return False  # only the pinned keys are trusted


def sidecar_names(spec: FilesSpec, name: str) -> tuple[str, ...]:
    """The sidecar files ``name`` needs under ``spec`` (``NAME.sha256``, ``NAME.p7s``)."""
    names: list[str] = []
    if spec.checksum == "sha256-sidecar":
        names.append(name + ".sha256")
    if spec.signature == "detached-cms":
        names.append(name + ".p7s")
    return tuple(names)


@asynccontextmanager
async def _session(partner: SftpPartner, client_key: bytes) -> AsyncIterator[asyncssh.SFTPClient]:
    client = _PinnedClient()
    where = f"{partner.host}:{partner.port}"
    try:
        key = asyncssh.import_private_key(client_key)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise TransferError(f"the client key for {where} could not be read") from exc
    try:
        options = await client_options(
            client_key=key,
            username=partner.user,
            known_hosts=known_hosts(partner),
            client_factory=lambda: client,
            connect_timeout=_CONNECT_TIMEOUT,
        )
        conn = await asyncssh.connect(partner.host, partner.port, config=None, options=options)
    except asyncssh.HostKeyNotVerifiable as exc:
        offered = fingerprint(key_line(client.offered)) if client.offered else "unknown"
        raise HostKeyError(
            f"the SSH host key of {where} ({offered}) is not among the keys pinned "
            "in the manifest; nothing was transferred"
        ) from exc
    except asyncssh.KeyExchangeFailed as exc:
        if "host key" in exc.reason.lower():  # the server has no key of a pinned type
            pinned = ", ".join(sorted({line.split()[0] for line in partner.host_keys}))
            raise HostKeyError(
                f"{where} offers no SSH host key of the pinned types ({pinned}); "
                "nothing was transferred"
            ) from exc
        raise TransferError(f"key exchange with {where} failed: {exc.reason}") from exc
    except asyncssh.PermissionDenied as exc:
        raise TransferError(f"{where} refused Interlock's key for user {partner.user}") from exc
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        raise TransferError(f"could not connect to {where}: {type(exc).__name__}") from exc
    async with conn:
        try:
            async with conn.start_sftp_client() as sftp:
                yield sftp
        except asyncssh.SFTPError as exc:
            raise TransferError(f"SFTP with {where} failed: {exc.reason}") from exc


async def _read(sftp: asyncssh.SFTPClient, path: str, limit: int) -> bytes:
    async with sftp.open(path, "rb") as remote:
        data = await remote.read(limit)
    if not isinstance(data, bytes):
        raise TransferError("the SFTP client returned text for a binary read")
    return data


async def pull(
    partner: SftpPartner, spec: FilesSpec, client_key: bytes, *, receive: Receive
) -> list[Verdict]:
    """Download the files waiting on the partner, hand each to ``receive``, delete the accepted."""
    if spec.remote_path is None:
        raise TransferError("an SFTP pull needs remote_path")
    verdicts: list[Verdict] = []
    async with _session(partner, client_key) as sftp:
        entries = {
            entry.filename: entry
            for entry in await sftp.readdir(spec.remote_path)
            if isinstance(entry.filename, str)
            and entry.attrs.type == asyncssh.FILEXFER_TYPE_REGULAR
        }
        for name in _wanted(spec, entries):
            path = posixpath.join(spec.remote_path, name)
            data = await _read(sftp, path, spec.max_size + 1)
            sidecars = {
                side: await _read(sftp, posixpath.join(spec.remote_path, side), _SIDECAR_LIMIT)
                for side in sidecar_names(spec, name)
                if side in entries
            }
            verdict = await receive(name, data, sidecars)
            verdicts.append(verdict)
            if verdict.accepted:
                for done in (name, *sidecars):
                    await sftp.remove(posixpath.join(spec.remote_path, done))
    return verdicts


def _wanted(spec: FilesSpec, names: Iterable[str]) -> list[str]:
    """The files to pull: matching the pattern, not a sidecar of another file, in order."""
    present = set(names)
    sidecars = {side for name in present for side in sidecar_names(spec, name)}
    return sorted(
        name
        for name in present - sidecars
        if fnmatch.fnmatchcase(name, spec.pattern) and check_name(name) is None
    )


async def _upload(sftp: asyncssh.SFTPClient, directory: str, name: str, data: bytes) -> None:
    temporary = posixpath.join(directory, f".{name}.{secrets.token_hex(8)}.part")
    try:
        async with sftp.open(temporary, "wb") as remote:
            await remote.write(data)
        await sftp.rename(temporary, posixpath.join(directory, name))  # never overwrites
    except BaseException:
        with contextlib.suppress(asyncssh.SFTPError):
            await sftp.remove(temporary)
        raise


async def push(
    partner: SftpPartner, spec: FilesSpec, client_key: bytes, files: Sequence[tuple[str, bytes]]
) -> None:
    """Upload each ``(name, data)`` to ``spec.remote_path``: a temporary name, then renamed."""
    if spec.remote_path is None:
        raise TransferError("an SFTP push needs remote_path")
    for name, _ in files:
        if (problem := check_name(name)) is not None:
            raise TransferError(f"cannot push this file: {problem}")
    async with _session(partner, client_key) as sftp:
        for name, data in files:
            if spec.checksum == "sha256-sidecar":  # the sidecar first: there when the file is
                digest = hashlib.sha256(data).hexdigest().encode("ascii")
                await _upload(sftp, spec.remote_path, name + ".sha256", digest + b"\n")
            await _upload(sftp, spec.remote_path, name, data)


async def upload_report(
    partner: SftpPartner, client_key: bytes, directory: str, name: str, data: bytes
) -> None:
    """Upload one rejection report into ``directory`` (a temporary name, then renamed).

    A report already there under ``name`` (an earlier attempt whose answer was
    lost) counts as delivered: the name carries the refused file's hash.
    """
    if (problem := check_name(name)) is not None:
        raise TransferError(f"cannot upload this report: {problem}")
    async with _session(partner, client_key) as sftp:
        try:
            await _upload(sftp, directory, name, data)
        except asyncssh.SFTPError as exc:
            if not await sftp.exists(posixpath.join(directory, name)):
                raise TransferError(f"the report could not be uploaded: {exc.reason}") from exc
