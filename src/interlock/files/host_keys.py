"""SSH host keys: the manifest's pinned keys, their fingerprints, and the trust-host fetch.

A partner's SFTP server is trusted only when it presents one of the host keys
pinned in the manifest (``partners.<name>.sftp.host_keys``). :func:`known_hosts`
turns those lines into the object asyncssh checks against — verification is
never switched off. :func:`fetch_host_key` asks a server which keys it offers,
for ``interlock files trust-host`` to show with their fingerprints; what it
returns is *never* trusted by itself: an operator confirms a fingerprint
out of band and pastes the line into the manifest.

Every client connection takes :func:`client_options`, so nothing of the
service user's SSH set-up (``~/.ssh``, its agent) is consulted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterable

import asyncssh

from interlock.config.files import SftpPartner
from interlock.errors import InterlockError

__all__ = [
    "HostKeyError",
    "PinnedHostKeys",
    "client_options",
    "fetch_host_key",
    "fingerprint",
    "key_line",
    "known_hosts",
    "pinned",
]

#: The host-key algorithms asked for one by one when fetching a server's keys.
_FETCH_ALGORITHMS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
)


class HostKeyError(InterlockError):
    """A server's host key is not among the pinned ones, or could not be read."""

    code = "ssh_host_key_refused"


PinnedHostKeys = tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]]
"""asyncssh's ``known_hosts=`` triple: trusted host keys, trusted CA keys (none), revoked."""


def _import_lines(lines: Iterable[str]) -> list[asyncssh.SSHKey]:
    keys = []
    for line in lines:
        try:
            keys.append(asyncssh.import_public_key(line.strip()))
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise HostKeyError("a pinned SSH host key could not be read") from exc
    return keys


def known_hosts(partner: SftpPartner) -> PinnedHostKeys:
    """The partner's pinned host keys as asyncssh's ``known_hosts=`` value (no CA, none revoked)."""
    return (_import_lines(partner.host_keys), [], [])


def pinned(lines: Iterable[str]) -> PinnedHostKeys:
    """Pinned host keys from OpenSSH public-key lines (the drop server's tests use it)."""
    return (_import_lines(lines), [], [])


async def client_options(
    *, client_key: asyncssh.SSHKey | None = None, **settings: object
) -> asyncssh.SSHClientConnectionOptions:
    """asyncssh client options that consult nothing of the service user's SSH set-up.

    asyncssh's defaults read ``~/.ssh/config``, load ``~/.ssh/id_*`` and the
    agent (``SSH_AUTH_SOCK``), and trust X.509 host certificates from
    ``~/.ssh/ca-bundle.crt`` and ``~/.ssh/crt/`` besides the pinned keys — a
    way around the pinning (or, without pyOpenSSL, a crash). Here each is off:
    only ``client_key`` authenticates, by public key alone. ``settings`` are the
    connection's own (``username``, ``known_hosts``, ...). The call taking these
    options must pass ``config=None`` too: asyncssh loads ``~/.ssh/config`` for
    a call that leaves it out.
    """
    options: asyncssh.SSHClientConnectionOptions = (
        await asyncssh.SSHClientConnectionOptions.construct(
            config=None,
            x509_trusted_certs=None,
            x509_trusted_cert_paths=None,
            client_keys=[client_key] if client_key is not None else None,
            agent_path=None,
            agent_forwarding=False,
            pkcs11_provider=None,
            host_based_auth=False,
            password=None,
            kbdint_auth=False,
            gss_host=None,
            **settings,
        )
    )
    return options


def fingerprint(public_key_line: str) -> str:
    """The key's SHA-256 fingerprint as OpenSSH prints it: ``SHA256:`` and unpadded base64."""
    parts = public_key_line.split()
    if len(parts) < 2:
        raise HostKeyError("not an OpenSSH public-key line")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError as exc:
        raise HostKeyError("not an OpenSSH public-key line") from exc
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def key_line(key: asyncssh.SSHKey) -> str:
    """An asyncssh public key as one OpenSSH line (algorithm and base64, no comment)."""
    return key.export_public_key("openssh").decode("ascii").split("\n", 1)[0].strip()


async def fetch_host_key(
    host: str,
    port: int = 22,
    *,
    timeout: float = 10,  # noqa: ASYNC109  (the agreed interface: a limit per attempt)
) -> list[str]:
    """The host keys the server offers (one per algorithm it has), as OpenSSH lines.

    For ``interlock files trust-host``: shown with :func:`fingerprint` for the
    operator to confirm and paste into the manifest. Nothing here trusts them.
    """
    found: list[str] = []
    options = await client_options()
    for algorithm in _FETCH_ALGORITHMS:
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(
                    host, port, server_host_key_algs=[algorithm], config=None, options=options
                ),
                timeout,
            )
        except (asyncssh.Error, OSError, TimeoutError):
            continue
        if key is not None:
            line = key_line(key)
            if line not in found:
                found.append(line)
    if not found:
        raise HostKeyError(f"no SSH host key could be read from {host}:{port}")
    return found
