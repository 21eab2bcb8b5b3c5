"""One integration's SFTP transfers: inbound into quarantine, outbound from the outbox, scheduled."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import asyncssh
import pytest

from interlock.audit import MemorySink
from interlock.errors import ConfigError
from interlock.files.quarantine import Quarantine
from interlock.files.transfers import Outbox, run_scheduled, transfer_once
from tests.files.sftp_support import Keys, PartnerServer, manifest, private_pem

ORDERS = b"order_id,email,total\n1,a@example.com,3\n"


def partner_dirs(tmp_path: Path) -> Path:
    """The partner's server root with /outbound/orders and /inbound."""
    root = tmp_path / "partner"
    (root / "outbound" / "orders").mkdir(parents=True)
    (root / "inbound").mkdir()
    return root


def test_inbound_transfer_pulls_into_quarantine(tmp_path: Path) -> None:
    """An inbound SFTP integration's run lands the partner's files in its quarantine."""
    keys, sink = Keys(), MemorySink()
    root = partner_dirs(tmp_path)
    (root / "outbound" / "orders" / "a.csv").write_bytes(ORDERS)
    (root / "outbound" / "orders" / "a.csv.sha256").write_text(hashlib.sha256(ORDERS).hexdigest())

    async def main() -> None:
        async with PartnerServer(root, keys.partner_host, keys.client) as port:
            loaded = manifest(tmp_path, keys, sftp_port=port)
            quarantine = Quarantine(tmp_path / "files", loaded, "nightly-orders", audit=sink)
            verdicts = await transfer_once(
                loaded,
                "nightly-orders",
                private_pem(keys.client),
                audit=sink,
                quarantine=quarantine,
            )
            assert [v.accepted for v in verdicts] == [True]
            assert [p.name for p in quarantine.processing()] == ["a.csv"]

    asyncio.run(main())
    assert list((root / "outbound" / "orders").iterdir()) == []


def test_outbound_transfer_pushes_the_outbox_and_audits_each_file(tmp_path: Path) -> None:
    """Files in the outbox go to the partner, move to sent, and each is a files.send entry."""
    keys, sink = Keys(), MemorySink()
    root = partner_dirs(tmp_path)
    outbox = Outbox(tmp_path / "files", "orders-out")
    (outbox.pending_dir / "c.csv").write_bytes(ORDERS)
    (outbox.pending_dir / "evil").symlink_to("/etc/passwd")

    async def main() -> None:
        async with PartnerServer(root, keys.partner_host, keys.client) as port:
            loaded = manifest(tmp_path, keys, sftp_port=port)
            await transfer_once(
                loaded, "orders-out", private_pem(keys.client), audit=sink, outbox=outbox
            )

    asyncio.run(main())
    assert [p.name for p in (root / "inbound").iterdir()] == ["c.csv"]
    assert [p.name for p in outbox.sent_dir.iterdir()] == ["c.csv"]
    (entry,) = sink.entries
    assert entry.action == "files.send"
    assert entry.details["sha256"] == hashlib.sha256(ORDERS).hexdigest()
    assert entry.volume.bytes == len(ORDERS)


def test_transfer_needs_an_sftp_integration(tmp_path: Path) -> None:
    """A drop integration, or an inbound one without quarantine, is a configuration error."""
    keys, sink = Keys(), MemorySink()
    loaded = manifest(tmp_path, keys)
    with pytest.raises(ConfigError):
        asyncio.run(transfer_once(loaded, "acme-drop", b"", audit=sink))
    with pytest.raises(ConfigError):
        asyncio.run(transfer_once(loaded, "nightly-orders", b"", audit=sink))


def test_scheduled_failure_is_audited_and_retried(tmp_path: Path) -> None:
    """A run refused for an unpinned host key is audited; the loop carries on until stopped."""
    keys, sink = Keys(), MemorySink()
    root = partner_dirs(tmp_path)
    outbox = Outbox(tmp_path / "files", "orders-out")
    (outbox.pending_dir / "c.csv").write_bytes(ORDERS)

    async def main() -> None:
        impostor = asyncssh.generate_private_key("ssh-ed25519")
        async with PartnerServer(root, impostor, keys.client) as port:
            loaded = manifest(tmp_path, keys, sftp_port=port)
            stop = asyncio.Event()
            task = asyncio.create_task(
                run_scheduled(
                    loaded,
                    "orders-out",
                    private_pem(keys.client),
                    audit=sink,
                    stop=stop,
                    outbox=outbox,
                )
            )
            async with asyncio.timeout(10):
                while len(sink.entries) < 2:  # noqa: ASYNC110  (polling the sink the loop writes)
                    await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert {e.action for e in sink.entries} == {"files.transfer"}
    assert all(e.reason and e.reason.startswith("ssh_host_key_refused") for e in sink.entries)
    assert list((root / "inbound").iterdir()) == []


def test_sent_keeps_every_copy_of_a_name(tmp_path: Path) -> None:
    """Two sends under one name leave both copies in sent/ (the later replaced the earlier
    before); the very same bytes a third time are kept once."""
    outbox = Outbox(tmp_path / "files", "orders-out")
    for batch in (b"FIRST batch\n", b"SECOND batch\n", b"SECOND batch\n"):
        (outbox.pending_dir / "confirm.csv").write_bytes(batch)
        outbox.sent("confirm.csv")
        assert not (outbox.pending_dir / "confirm.csv").exists()
    second = hashlib.sha256(b"SECOND batch\n").hexdigest()[:16]
    assert {p.name: p.read_bytes() for p in outbox.sent_dir.iterdir()} == {
        "confirm.csv": b"FIRST batch\n",
        f"{second}-confirm.csv": b"SECOND batch\n",
    }


def test_a_file_still_being_written_under_a_dot_name_is_not_sent(tmp_path: Path) -> None:
    """The producer's rule (docs/files.md): write ``.NAME.part``, then rename; until the
    rename the outbox offers nothing."""
    outbox = Outbox(tmp_path / "files", "orders-out")
    partial = outbox.pending_dir / ".confirm.csv.part"
    partial.write_bytes(b"order_id,total\n1,")
    assert outbox.pending() == []
    partial.write_bytes(ORDERS)
    partial.rename(outbox.pending_dir / "confirm.csv")
    assert outbox.pending() == [("confirm.csv", ORDERS)]
