"""The drop server against OpenSSH's own ``sftp`` client (an independent peer) and asyncssh."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
import pytest

from interlock.audit.sink import MemorySink
from interlock.files.drop_server import DropServer
from interlock.files.host_keys import key_line, pinned
from interlock.testing.services import require_env
from tests.files.sftp_support import Keys, Received, manifest, private_pem

SFTP = shutil.which("sftp")

# CI has OpenSSH: under INTERLOCK_REQUIRE_SERVICES=1 these run, and fail without it.
needs_openssh = pytest.mark.skipif(
    SFTP is None and not require_env(), reason="OpenSSH's sftp client is not installed"
)


@asynccontextmanager
async def partner_sftp(port: int, keys: Keys, partner: str) -> AsyncIterator[asyncssh.SFTPClient]:
    """An SFTP session on the drop server as ``partner`` (its key from ``keys``), host key pinned."""
    async with (
        asyncssh.connect(
            "127.0.0.1",
            port,
            username=partner,
            client_keys=[getattr(keys, partner)],
            known_hosts=pinned([key_line(keys.drop_host)]),
            config=None,
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        yield sftp


def run(
    scenario: Callable[[DropServer, int], Awaitable[None]],
    tmp_path: Path,
    keys: Keys,
    received: Received,
    audit: MemorySink | None = None,
) -> None:
    """Start a drop server, run the scenario against it, stop it."""

    async def main() -> None:
        server = DropServer(
            tmp_path / "files",
            manifest(tmp_path, keys),
            host_key=private_pem(keys.drop_host),
            receive=received.drop,
            audit=audit or MemorySink(),
        )
        port = await server.start()
        try:
            await scenario(server, port)
        finally:
            await server.stop()

    asyncio.run(main())


async def openssh_sftp(
    tmp_path: Path,
    *,
    port: int,
    user: str,
    key: asyncssh.SSHKey,
    host_key: asyncssh.SSHKey,
    batch: str,
) -> tuple[int, str]:
    """Run OpenSSH's ``sftp`` in batch mode, host key checked strictly; (exit status, stderr)."""
    identity = tmp_path / f"id_{user}"
    identity.write_bytes(bytes(key.export_private_key("openssh")))
    identity.chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {key_line(host_key)}\n", encoding="ascii")
    commands = tmp_path / "batch"
    commands.write_text(batch, encoding="utf-8")
    assert SFTP is not None
    process = await asyncio.create_subprocess_exec(
        SFTP,
        "-F",
        "/dev/null",
        "-b",
        str(commands),
        "-i",
        str(identity),
        "-P",
        str(port),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "PasswordAuthentication=no",
        f"{user}@127.0.0.1",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin"), "HOME": str(tmp_path)},
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, stderr.decode("utf-8", "replace")


@pytest.mark.processes
@needs_openssh
def test_openssh_sftp_uploads_into_quarantine(tmp_path: Path) -> None:
    """OpenSSH's sftp client uploads with the partner's key; the file is handed to receive."""
    keys, received = Keys(), Received()
    (tmp_path / "orders.csv").write_bytes(b"order_id,email,total\n1,a@example.com,3\n")

    async def scenario(server: DropServer, port: int) -> None:
        status, err = await openssh_sftp(
            tmp_path,
            port=port,
            user="acme",
            key=keys.acme,
            host_key=keys.drop_host,
            batch="put orders.csv\n",
        )
        assert status == 0, err

    sink = MemorySink()
    run(scenario, tmp_path, keys, received, sink)
    assert received.files == [("acme", "orders.csv", b"order_id,email,total\n1,a@example.com,3\n")]
    (login,) = [e for e in sink.entries if e.action == "files.drop.login"]
    assert (login.outcome.result, login.actor) == ("success", "partner:acme")
    assert list((tmp_path / "files" / "drop" / "acme").iterdir()) == []  # nothing left behind
    assert ((tmp_path / "files" / "drop" / "acme").stat().st_mode & 0o777) == 0o700


@pytest.mark.processes
@needs_openssh
@pytest.mark.parametrize(
    "command",
    [
        "ls",
        "get orders.csv",
        "rm orders.csv",
        "mkdir sub",
        "rename a.csv b.csv",
        "symlink a.csv b.csv",
        "chmod 600 a.csv",
    ],
)
def test_openssh_upload_only_refuses_everything_else(tmp_path: Path, command: str) -> None:
    """An upload-only partner cannot list, read, remove, rename, mkdir, symlink or chmod."""
    keys, received = Keys(), Received()

    async def scenario(server: DropServer, port: int) -> None:
        status, err = await openssh_sftp(
            tmp_path,
            port=port,
            user="acme",
            key=keys.acme,
            host_key=keys.drop_host,
            batch=command + "\n",
        )
        # OpenSSH's batch ``ls`` reports the refusal but exits 0; its ``get`` globs first,
        # and the refused stat reads as "not found".
        assert status != 0 or command == "ls", err
        assert "ermission denied" in err or (command.startswith("get") and "not found" in err), err

    run(scenario, tmp_path, keys, received)
    assert received.files == []


@pytest.mark.processes
@needs_openssh
def test_openssh_refused_file_fails_the_upload(tmp_path: Path) -> None:
    """A file the quarantine refuses fails the partner's upload; nothing stays on the server."""
    keys, received = Keys(), Received()
    (tmp_path / "bad.csv").write_bytes(b"x\n")

    async def scenario(server: DropServer, port: int) -> None:
        status, _ = await openssh_sftp(
            tmp_path,
            port=port,
            user="acme",
            key=keys.acme,
            host_key=keys.drop_host,
            batch="put bad.csv\n",
        )
        assert status != 0

    run(scenario, tmp_path, keys, received)
    assert [name for _, name, _ in received.files] == ["bad.csv"]
    assert list((tmp_path / "files" / "drop" / "acme").iterdir()) == []


@pytest.mark.processes
@needs_openssh
def test_openssh_wrong_key_and_other_partner_key_refused(tmp_path: Path) -> None:
    """Only the partner's own keys log in: a stranger's key and another partner's key fail."""
    keys, received = Keys(), Received()
    (tmp_path / "orders.csv").write_bytes(b"a\n")

    async def scenario(server: DropServer, port: int) -> None:
        stranger = asyncssh.generate_private_key("ssh-ed25519")
        status, err = await openssh_sftp(
            tmp_path,
            port=port,
            user="acme",
            key=stranger,
            host_key=keys.drop_host,
            batch="put orders.csv\n",
        )
        assert status != 0, err
        assert "Permission denied (publickey)" in err, err
        status, err = await openssh_sftp(
            tmp_path,
            port=port,
            user="acme",
            key=keys.globex,
            host_key=keys.drop_host,
            batch="put orders.csv\n",
        )
        assert status != 0, err
        assert "Permission denied (publickey)" in err, err
        status, err = await openssh_sftp(
            tmp_path,
            port=port,
            user="nobody",
            key=keys.acme,
            host_key=keys.drop_host,
            batch="put orders.csv\n",
        )
        assert status != 0

    sink = MemorySink()
    run(scenario, tmp_path, keys, received, sink)
    assert received.files == []
    logins = [e for e in sink.entries if e.action == "files.drop.login"]
    assert [(e.outcome.result, e.actor, e.details["user"]) for e in logins] == [
        ("failure", "partner:acme", "acme"),
        ("failure", "partner:acme", "acme"),
        ("failure", "anonymous", "nobody"),
    ]


@pytest.mark.processes
@needs_openssh
def test_openssh_checks_the_drop_servers_host_key(tmp_path: Path) -> None:
    """OpenSSH with strict checking refuses the drop server when another key is pinned."""
    keys, received = Keys(), Received()
    (tmp_path / "orders.csv").write_bytes(b"a\n")

    async def scenario(server: DropServer, port: int) -> None:
        other = asyncssh.generate_private_key("ssh-ed25519")
        status, err = await openssh_sftp(
            tmp_path,
            port=port,
            user="acme",
            key=keys.acme,
            host_key=other,
            batch="put orders.csv\n",
        )
        assert status != 0, err
        assert "Host key verification failed" in err, err

    run(scenario, tmp_path, keys, received)
    assert received.files == []


@pytest.mark.parametrize(
    "path", ["../globex/x.csv", "/../x.csv", "sub/x.csv", "../../etc/passwd", ".hidden", "a\x01b"]
)
def test_no_escape_from_the_partner_root(tmp_path: Path, path: str) -> None:
    """``..``, sub-directories, dot files and control characters are refused; nothing is written."""
    keys, received = Keys(), Received()

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, keys, "globex") as sftp:
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                async with sftp.open(path, "wb") as remote:
                    await remote.write(b"x")

    run(scenario, tmp_path, keys, received)
    assert received.files == []
    assert not (tmp_path / "files" / "drop" / "acme").exists()


def test_a_partner_cannot_see_another_partners_uploads(tmp_path: Path) -> None:
    """A partner that may list sees an empty root: uploads go to quarantine, never stay."""
    keys, received = Keys(), Received()

    async def scenario(server: DropServer, port: int) -> None:
        async with (
            partner_sftp(port, keys, "acme") as sftp,
            sftp.open("orders.csv", "wb") as remote,
        ):
            await remote.write(b"secret order\n")
        async with partner_sftp(port, keys, "globex") as sftp:
            assert await sftp.listdir("/") == [".", ".."]
            for path in ("orders.csv", "/acme/orders.csv", "../acme/orders.csv"):
                with pytest.raises((asyncssh.SFTPPermissionDenied, asyncssh.SFTPNoSuchFile)):
                    async with sftp.open(path, "rb") as remote:
                        await remote.read()

    run(scenario, tmp_path, keys, received)
    assert received.files == [("acme", "orders.csv", b"secret order\n")]


def test_oversized_upload_refused(tmp_path: Path) -> None:
    """An upload over the drop integration's max_size fails and is never handed on."""
    keys, received = Keys(), Received()

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, keys, "acme") as sftp:
            with pytest.raises(asyncssh.SFTPFailure):
                async with sftp.open("big.csv", "wb") as remote:
                    await remote.write(b"x" * (64 * 1024 + 1))

    run(scenario, tmp_path, keys, received)
    assert received.files == []
    assert list((tmp_path / "files" / "drop" / "acme").iterdir()) == []


def test_password_authentication_is_not_offered(tmp_path: Path) -> None:
    """A password login is refused (the server offers public-key authentication only)."""
    keys, received = Keys(), Received()

    async def scenario(server: DropServer, port: int) -> None:
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh.connect(
                "127.0.0.1",
                port,
                username="acme",
                password="guess",
                client_keys=None,
                known_hosts=pinned([key_line(keys.drop_host)]),
                config=None,
            )

    run(scenario, tmp_path, keys, received)


def test_no_shell_command_or_forwarding(tmp_path: Path) -> None:
    """A partner account runs SFTP only: no command, no shell, no port forwarding."""
    keys, received = Keys(), Received()

    async def scenario(server: DropServer, port: int) -> None:
        async with asyncssh.connect(
            "127.0.0.1",
            port,
            username="acme",
            client_keys=[keys.acme],
            known_hosts=pinned([key_line(keys.drop_host)]),
            config=None,
        ) as conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.run("id", check=True)
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.open_connection("127.0.0.1", port)
            with pytest.raises(asyncssh.ChannelListenError):
                await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", port)

    run(scenario, tmp_path, keys, received)


@pytest.mark.processes
@needs_openssh
@pytest.mark.parametrize(
    "batch",
    [
        "put orders.csv ../globex/orders.csv\n",
        "put orders.csv /../globex/orders.csv\n",
        "cd ..\nput orders.csv\n",
        "put orders.csv sub/orders.csv\n",
    ],
)
def test_openssh_cannot_leave_the_partner_root(tmp_path: Path, batch: str) -> None:
    """OpenSSH's client cannot upload outside the partner's root with ``..`` or a sub-path."""
    keys, received = Keys(), Received()
    (tmp_path / "orders.csv").write_bytes(b"a\n")

    async def scenario(server: DropServer, port: int) -> None:
        status, err = await openssh_sftp(
            tmp_path, port=port, user="acme", key=keys.acme, host_key=keys.drop_host, batch=batch
        )
        assert status != 0, err

    run(scenario, tmp_path, keys, received)
    assert received.files == []
    assert not (tmp_path / "files" / "drop" / "globex").exists()


@pytest.mark.processes
@needs_openssh
def test_openssh_listing_partner_sees_an_empty_root(tmp_path: Path) -> None:
    """A partner declared ``upload_only: false`` may list its root, which holds nothing."""
    keys, received = Keys(), Received()
    (tmp_path / "orders.csv").write_bytes(b"a\n")

    async def scenario(server: DropServer, port: int) -> None:
        batch = "put orders.csv\nls -la\n"
        status, err = await openssh_sftp(
            tmp_path,
            port=port,
            user="globex",
            key=keys.globex,
            host_key=keys.drop_host,
            batch=batch,
        )
        assert status == 0, err

    run(scenario, tmp_path, keys, received)
    assert received.files == [("globex", "orders.csv", b"a\n")]


def _refusals(audit: MemorySink) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (
            str(entry.details["operation"]),
            str(entry.details["path"]),
            entry.integration,
            entry.reason,
        )
        for entry in audit.entries
        if entry.action == "files.drop.refused"
    ]


def test_every_refused_operation_is_audited(tmp_path: Path) -> None:
    """Too large, a path outside the root, and each operation an upload-only account may
    not do: one ``files.drop.refused`` entry each, naming the partner, the operation and
    the path (the integration when the name is one a drop integration takes)."""
    keys, received, audit = Keys(), Received(), MemorySink()

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, keys, "acme") as sftp:
            with pytest.raises(asyncssh.SFTPFailure):
                async with sftp.open("big.csv", "wb") as remote:
                    await remote.write(b"x" * (64 * 1024 + 1))
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.open("../globex/x.csv", "wb")
            for attempt in (
                sftp.remove("orders.csv"),
                sftp.rename("a.csv", "b.csv"),
                sftp.mkdir("sub"),
                sftp.listdir("/"),
                sftp.open("orders.csv", "rb"),
            ):
                with pytest.raises(asyncssh.SFTPPermissionDenied):
                    await attempt
        await asyncio.sleep(0.1)  # the session's end reaches the server

    run(scenario, tmp_path, keys, received, audit)
    assert received.files == []
    assert _refusals(audit) == [
        ("write", "big.csv", "acme-drop", "larger than 65536 bytes"),
        ("open", "../globex/x.csv", None, "not a plain file name at the root"),
        ("remove", "orders.csv", "acme-drop", "remove is not allowed"),
        ("rename", "a.csv", "acme-drop", "rename is not allowed"),
        ("mkdir", "sub", "acme-drop", "mkdir is not allowed"),
        ("list", "/", None, "list is not allowed"),
        ("open", "orders.csv", "acme-drop", "only writing a file is allowed"),
    ]
    assert all(entry.actor == "partner:acme" for entry in audit.entries if entry.details)


def test_a_flood_of_refusals_is_counted_not_written_one_by_one(tmp_path: Path) -> None:
    """30 refused removals in one session: 20 entries, then one counting the other 10."""
    keys, received, audit = Keys(), Received(), MemorySink()

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, keys, "acme") as sftp:
            for number in range(30):
                with pytest.raises(asyncssh.SFTPPermissionDenied):
                    await sftp.remove(f"file{number}.csv")
        await asyncio.sleep(0.1)

    run(scenario, tmp_path, keys, received, audit)
    refusals = _refusals(audit)
    assert len(refusals) == 21
    assert refusals[19][1] == "file19.csv"
    assert refusals[20] == ("(several)", "", None, "10 more refused operations in the session")


def test_a_session_may_hold_only_sixteen_uploads_open(tmp_path: Path) -> None:
    """The 17th file opened for writing before any is closed is refused (and audited):
    the spool one session can fill is bounded."""
    keys, received, audit = Keys(), Received(), MemorySink()

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, keys, "acme") as sftp:
            handles = [await sftp.open(f"file{number}.csv", "wb") for number in range(16)]
            with pytest.raises(asyncssh.SFTPFailure, match="too many files open"):
                await sftp.open("file16.csv", "wb")
            for handle in handles:
                await handle.write(b"x\n")
                await handle.close()
            async with sftp.open("file17.csv", "wb") as remote:  # room again
                await remote.write(b"y\n")

    run(scenario, tmp_path, keys, received, audit)
    assert len(received.files) == 17
    assert _refusals(audit) == [
        ("open", "file16.csv", "acme-drop", "more than 16 files open at once")
    ]


def test_a_partner_may_hold_only_sixteen_uploads_open_across_connections(
    tmp_path: Path,
) -> None:
    """Two connections of one partner share its sixteen: the 17th open upload is refused (each
    session had sixteen of its own before); a session that ends gives its room back, and another
    partner's count is its own."""
    keys, received, audit = Keys(), Received(), MemorySink()

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, keys, "acme") as first:
            handles = [await first.open(f"a{number}.csv", "wb") for number in range(8)]
            async with partner_sftp(port, keys, "acme") as second:
                handles += [await second.open(f"b{number}.csv", "wb") for number in range(8)]
                with pytest.raises(asyncssh.SFTPFailure, match="too many files open"):
                    await second.open("b8.csv", "wb")
                async with (
                    partner_sftp(port, keys, "globex") as other,
                    other.open("g.csv", "wb") as remote,
                ):
                    await remote.write(b"g\n")
            await asyncio.sleep(0.2)  # the second session's end reaches the server
            async with first.open("a8.csv", "wb") as remote:  # its eight are free again
                await remote.write(b"x\n")
            for handle in handles[:8]:
                await handle.close()

    run(scenario, tmp_path, keys, received, audit)
    assert [ref[1] for ref in _refusals(audit)] == ["b8.csv"]
    assert len(list((tmp_path / "files" / "drop" / "acme").iterdir())) == 0
