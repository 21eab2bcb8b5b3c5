"""Pull and push between Interlock's SFTP client and an asyncssh SFTP server for the partner.

The partner's server in these tests is asyncssh's own SFTP server, started by
the test (chrooted to a temporary directory); tests/files/test_openssh.py runs
the same transfers against OpenSSH's sshd.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import asyncssh
import pytest

from interlock.audit import MemorySink
from interlock.config.files import FilesSpec, SftpPartner
from interlock.config.manifest import Manifest
from interlock.files.host_keys import HostKeyError, fingerprint
from interlock.files.quarantine import Quarantine, Verdict
from interlock.files.sftp import TransferError, pull, push
from tests.files.sftp_support import (
    Keys,
    PartnerServer,
    manifest,
    private_pem,
    public_line,
    service_users_ssh,
)

ORDERS = b"order_id,email,total\n1,a@example.com,3\n"


def partner_root(tmp_path: Path) -> Path:
    """The partner server's files: /outbound/orders holding what waits for Interlock."""
    orders = tmp_path / "partner" / "outbound" / "orders"
    orders.mkdir(parents=True)
    return tmp_path / "partner"


def run(
    tmp_path: Path,
    keys: Keys,
    scenario: Callable[[Manifest, SftpPartner, FilesSpec], Awaitable[None]],
    *,
    host_key: asyncssh.SSHKey | None = None,
) -> None:
    """Start the partner's server (with ``host_key``, default the pinned one), run the scenario."""

    async def main() -> None:
        server = PartnerServer(tmp_path / "partner", host_key or keys.partner_host, keys.client)
        async with server as port:
            loaded = manifest(tmp_path, keys, sftp_port=port)
            sftp = loaded.partners["acme"].sftp
            files = loaded.integrations["nightly-orders"].files
            if sftp is None or files is None:
                pytest.fail("the test manifest lost its SFTP partner")
            await scenario(loaded, sftp, files)

    asyncio.run(main())


def test_pull_hands_files_to_quarantine_and_deletes_the_accepted(tmp_path: Path) -> None:
    """Matching files come with their sidecars; accepted ones are deleted, refused ones stay."""
    keys = Keys()
    orders = partner_root(tmp_path) / "outbound" / "orders"
    (orders / "a.csv").write_bytes(ORDERS)
    (orders / "a.csv.sha256").write_text(hashlib.sha256(ORDERS).hexdigest() + "\n")
    (orders / "b.csv").write_bytes(ORDERS)  # no sidecar: refused
    (orders / "notes.txt").write_bytes(b"not for us")
    sink = MemorySink()
    verdicts: list[Verdict] = []

    async def scenario(loaded: Manifest, partner: SftpPartner, spec: FilesSpec) -> None:
        quarantine = Quarantine(tmp_path / "files", loaded, "nightly-orders", audit=sink)

        async def receive(name: str, data: bytes, sidecars: Mapping[str, bytes]) -> Verdict:
            return await quarantine.accept(name, data, sidecars=sidecars)

        verdicts.extend(await pull(partner, spec, private_pem(keys.client), receive=receive))
        assert [p.name for p in quarantine.processing()] == ["a.csv"]

    run(tmp_path, keys, scenario)
    assert [v.accepted for v in verdicts] == [True, False]
    assert verdicts[0].sha256 == hashlib.sha256(ORDERS).hexdigest()
    assert sorted(p.name for p in orders.iterdir()) == ["b.csv", "notes.txt"]
    assert len(sink.entries) == 2


def test_pull_reads_no_more_than_max_size_plus_one(tmp_path: Path) -> None:
    """An oversized file reaches ``receive`` cut at max_size + 1 bytes (refused there) and stays."""
    keys = Keys()
    orders = partner_root(tmp_path) / "outbound" / "orders"
    (orders / "big.csv").write_bytes(b"x" * (3 * 1024 * 1024))
    seen: list[int] = []

    async def scenario(loaded: Manifest, partner: SftpPartner, spec: FilesSpec) -> None:
        async def receive(name: str, data: bytes, sidecars: Mapping[str, bytes]) -> Verdict:
            seen.append(len(data))
            return Verdict(False, ("too large",), "", len(data), 0, "text")

        await pull(partner, spec, private_pem(keys.client), receive=receive)

    run(tmp_path, keys, scenario)
    assert seen == [1024 * 1024 + 1]
    assert (orders / "big.csv").exists()


def test_a_host_key_not_pinned_is_refused_with_its_fingerprint(tmp_path: Path) -> None:
    """A server presenting another key: refused before login, naming the offered fingerprint."""
    keys = Keys()
    orders = partner_root(tmp_path) / "outbound" / "orders"
    (orders / "a.csv").write_bytes(ORDERS)
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    called: list[str] = []

    async def scenario(loaded: Manifest, partner: SftpPartner, spec: FilesSpec) -> None:
        async def receive(name: str, data: bytes, sidecars: Mapping[str, bytes]) -> Verdict:
            called.append(name)
            return Verdict(True, (), "", 0, 0, "text")

        with pytest.raises(HostKeyError) as refused:
            await pull(partner, spec, private_pem(keys.client), receive=receive)
        assert fingerprint(public_line(impostor)) in str(refused.value)
        assert refused.value.code == "ssh_host_key_refused"
        with pytest.raises(HostKeyError):
            await push(partner, spec, private_pem(keys.client), [("c.csv", ORDERS)])

    run(tmp_path, keys, scenario, host_key=impostor)
    assert called == []
    assert sorted(p.name for p in orders.iterdir()) == ["a.csv"]


def test_a_key_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    """A server with only an ECDSA key, when Ed25519 is pinned, is refused too."""
    keys = Keys()
    partner_root(tmp_path)

    async def scenario(loaded: Manifest, partner: SftpPartner, spec: FilesSpec) -> None:
        with pytest.raises(
            HostKeyError, match=r"no SSH host key of the pinned types \(ssh-ed25519\)"
        ):
            await push(partner, spec, private_pem(keys.client), [("c.csv", ORDERS)])

    run(tmp_path, keys, scenario, host_key=asyncssh.generate_private_key("ecdsa-sha2-nistp256"))
    assert list((tmp_path / "partner" / "outbound" / "orders").iterdir()) == []


def test_the_service_users_ssh_directory_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CA bundle, config and keys in ``~/.ssh``: the pinned server still works, others fail.

    asyncssh read ``~/.ssh/ca-bundle.crt`` by default, which crashed every pull
    with a NameError without pyOpenSSL (and trusted its CA's host certificates with it).
    """
    monkeypatch.setenv("HOME", str(service_users_ssh(tmp_path / "home")))
    keys = Keys()
    orders = partner_root(tmp_path) / "outbound" / "orders"
    (orders / "a.csv").write_bytes(ORDERS)
    pulled: list[str] = []

    async def scenario(loaded: Manifest, partner: SftpPartner, spec: FilesSpec) -> None:
        async def receive(name: str, data: bytes, sidecars: Mapping[str, bytes]) -> Verdict:
            pulled.append(name)
            return Verdict(False, ("kept",), "", len(data), 0, "csv")

        await pull(partner, spec, private_pem(keys.client), receive=receive)

    run(tmp_path, keys, scenario)
    assert pulled == ["a.csv"]

    async def impostor(loaded: Manifest, partner: SftpPartner, spec: FilesSpec) -> None:
        with pytest.raises(HostKeyError):
            await push(partner, spec, private_pem(keys.client), [("c.csv", ORDERS)])

    run(tmp_path, keys, impostor, host_key=asyncssh.generate_private_key("ssh-ed25519"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning:OpenSSL")  # asyncssh's pyOpenSSL calls
@pytest.mark.filterwarnings("ignore::DeprecationWarning:asyncssh")
def test_an_x509_host_certificate_from_a_ca_in_ssh_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unpinned server with a host certificate from ``~/.ssh/ca-bundle.crt``'s CA is refused."""
    pytest.importorskip("OpenSSL", reason="asyncssh's X.509 support needs pyOpenSSL")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    ca_key = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    ca = ca_key.generate_x509_ca_certificate(ca_key, "CN=A CA the service user trusts")
    ca.write_certificate(str(home / ".ssh" / "ca-bundle.crt"), "pem")
    rogue = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    certificate = ca_key.generate_x509_host_certificate(
        rogue, "CN=rogue", issuer="CN=A CA the service user trusts", principals=["127.0.0.1"]
    )
    keys = Keys()
    orders = partner_root(tmp_path) / "outbound" / "orders"
    (orders / "a.csv").write_bytes(ORDERS)
    called: list[str] = []

    async def main() -> None:
        listener = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[(rogue, certificate)],
            authorized_client_keys=asyncssh.import_authorized_keys(public_line(keys.client)),
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=bytes(tmp_path / "partner")),
        )
        try:
            loaded = manifest(tmp_path, keys, sftp_port=listener.get_port())
            partner, spec = (
                loaded.partners["acme"].sftp,
                loaded.integrations["nightly-orders"].files,
            )
            assert partner is not None
            assert spec is not None

            async def receive(name: str, data: bytes, sidecars: Mapping[str, bytes]) -> Verdict:
                called.append(name)
                return Verdict(True, (), "", 0, 0, "text")

            with pytest.raises(HostKeyError):
                await pull(partner, spec, private_pem(keys.client), receive=receive)
        finally:
            listener.close()
            await listener.wait_closed()

    asyncio.run(main())
    assert called == []


def test_push_uploads_under_a_temporary_name_then_renames(tmp_path: Path) -> None:
    """Pushed files arrive whole with their sidecar; no temporary file is left behind."""
    keys = Keys()
    orders = partner_root(tmp_path) / "outbound" / "orders"

    async def scenario(loaded: Manifest, partner: SftpPartner, spec: FilesSpec) -> None:
        await push(partner, spec, private_pem(keys.client), [("c.csv", ORDERS), ("d.csv", b"x\n")])

    run(tmp_path, keys, scenario)
    assert sorted(p.name for p in orders.iterdir()) == [
        "c.csv",
        "c.csv.sha256",
        "d.csv",
        "d.csv.sha256",
    ]
    assert (orders / "c.csv").read_bytes() == ORDERS
    assert (orders / "c.csv.sha256").read_text() == hashlib.sha256(ORDERS).hexdigest() + "\n"


def test_push_never_overwrites_and_refuses_bad_names(tmp_path: Path) -> None:
    """An existing file of the same name is kept; a name with a path is refused before connecting."""
    keys = Keys()
    orders = partner_root(tmp_path) / "outbound" / "orders"
    (orders / "c.csv").write_bytes(b"theirs\n")

    async def scenario(loaded: Manifest, partner: SftpPartner, spec: FilesSpec) -> None:
        spec = spec.model_copy(update={"checksum": "none"})
        with pytest.raises(TransferError):
            await push(partner, spec, private_pem(keys.client), [("c.csv", ORDERS)])
        with pytest.raises(TransferError, match="path separator"):
            await push(partner, spec, private_pem(keys.client), [("../c.csv", ORDERS)])

    run(tmp_path, keys, scenario)
    assert [p.name for p in orders.iterdir()] == ["c.csv"]
    assert (orders / "c.csv").read_bytes() == b"theirs\n"


def test_a_client_key_the_partner_does_not_know_is_refused(tmp_path: Path) -> None:
    """Login with a key the partner has not authorised fails with a clear error."""
    keys = Keys()
    partner_root(tmp_path)

    async def scenario(loaded: Manifest, partner: SftpPartner, spec: FilesSpec) -> None:
        stranger = asyncssh.generate_private_key("ssh-ed25519")
        with pytest.raises(TransferError, match="refused Interlock's key"):
            await push(partner, spec, private_pem(stranger), [("c.csv", ORDERS)])

    run(tmp_path, keys, scenario)
