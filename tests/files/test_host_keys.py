"""Pinned host keys, their fingerprints (as OpenSSH prints them) and the trust-host fetch."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

import asyncssh
import pytest

from interlock.files.host_keys import (
    HostKeyError,
    client_options,
    fetch_host_key,
    fingerprint,
    known_hosts,
)
from interlock.testing.services import require_env
from tests.files.sftp_support import Keys, manifest, public_line, service_users_ssh

SSH_KEYGEN = shutil.which("ssh-keygen")


@pytest.mark.processes
@pytest.mark.skipif(
    SSH_KEYGEN is None and not require_env(),  # CI has OpenSSH: there it fails instead
    reason="OpenSSH's ssh-keygen is not installed",
)
@pytest.mark.parametrize("algorithm", ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"])
def test_fingerprint_matches_ssh_keygen(tmp_path: Path, algorithm: str) -> None:
    """The fingerprint is the one ``ssh-keygen -l`` prints for the same key."""
    key = (
        asyncssh.generate_private_key(algorithm, key_size=2048)
        if algorithm == "ssh-rsa"
        else asyncssh.generate_private_key(algorithm)
    )
    line = public_line(key)
    (tmp_path / "key.pub").write_text(line + " comment\n", encoding="ascii")
    assert SSH_KEYGEN is not None
    printed = subprocess.run(  # noqa: S603  (ssh-keygen with fixed arguments)
        [SSH_KEYGEN, "-l", "-E", "sha256", "-f", str(tmp_path / "key.pub")],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split()[1]
    assert fingerprint(line + " comment") == printed


@pytest.mark.parametrize("line", ["", "ssh-ed25519", "ssh-ed25519 not*base64"])
def test_fingerprint_refuses_what_is_not_a_key_line(line: str) -> None:
    """Garbage is refused with the host-key error, not a crash."""
    with pytest.raises(HostKeyError):
        fingerprint(line)


def test_known_hosts_holds_exactly_the_pinned_keys(tmp_path: Path) -> None:
    """The asyncssh known_hosts value trusts the manifest's keys, no CA, nothing else."""
    keys = Keys()
    partner = manifest(tmp_path, keys).partners["acme"].sftp
    assert partner is not None
    trusted, cas, revoked = known_hosts(partner)
    assert [public_line(k) for k in trusted] == [public_line(keys.partner_host)]
    assert cas == []
    assert revoked == []


def test_fetch_host_key_returns_every_key_the_server_offers() -> None:
    """trust-host sees each host key the server has (one per algorithm), with fingerprints."""
    ed25519 = asyncssh.generate_private_key("ssh-ed25519")
    ecdsa = asyncssh.generate_private_key("ecdsa-sha2-nistp256")

    async def main() -> list[str]:
        listener = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[ed25519, ecdsa])
        try:
            return await fetch_host_key("127.0.0.1", listener.get_port(), timeout=5)
        finally:
            listener.close()
            await listener.wait_closed()

    lines = asyncio.run(main())
    assert sorted(lines) == sorted([public_line(ed25519), public_line(ecdsa)])
    assert all(fingerprint(line).startswith("SHA256:") for line in lines)


def test_fetch_host_key_consults_nothing_in_ssh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreadable key and a config in ``~/.ssh`` change nothing (asyncssh loaded both)."""
    monkeypatch.setenv("HOME", str(service_users_ssh(tmp_path / "home")))
    ed25519 = asyncssh.generate_private_key("ssh-ed25519")

    async def main() -> list[str]:
        listener = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[ed25519])
        try:
            return await fetch_host_key("127.0.0.1", listener.get_port(), timeout=5)
        finally:
            listener.close()
            await listener.wait_closed()

    assert asyncio.run(main()) == [public_line(ed25519)]


def test_no_x509_certificate_in_ssh_is_trusted_beside_the_pinned_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The options every connection takes trust no X.509 CA, ``~/.ssh`` holding one or not.

    asyncssh would trust host certificates from ``~/.ssh/ca-bundle.crt`` and
    ``~/.ssh/crt/`` beside the pinned keys. With pyOpenSSL installed,
    test_sftp.py's X.509 test shows the bypass end to end; pyOpenSSL is not a
    dependency (it skips there), so this checks the options themselves: X.509
    trust off, which also keeps asyncssh from offering x509v3 host-key algorithms.
    """
    monkeypatch.setenv("HOME", str(service_users_ssh(tmp_path / "home")))
    options = asyncio.run(client_options())
    assert options.x509_trusted_certs is None
    assert not options.x509_trusted_cert_paths


def test_fetch_host_key_from_nothing_is_an_error() -> None:
    """No server listening: a clear host-key error, nothing returned."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HostKeyError, match="no SSH host key"):
        asyncio.run(fetch_host_key("127.0.0.1", port, timeout=2))
