"""Sidecars on the drop server: a file waits for its declared ``.sha256``/``.p7s``, in any order.

Uploaded with OpenSSH's own ``sftp`` client (an independent peer) and asyncssh;
the real quarantine checks each pair; time is a manual clock moved by hand.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.files.drop_server import Arrival, DropServer
from interlock.files.notify import Notifier, report_name
from interlock.files.quarantine import Quarantine, Verdict
from interlock.testing.clock import ManualClock
from tests.files import as2_support
from tests.files.sftp_support import Keys, manifest, private_pem
from tests.files.test_drop_server import needs_openssh, openssh_sftp, partner_sftp

NAME = "orders.csv"
DATA = b"order_id,email,total\n1,a@example.com,3\n"
CHECKSUM = f"{hashlib.sha256(DATA).hexdigest()}  {NAME}\n".encode("ascii")


def sidecar_manifest(tmp_path: Path, keys: Keys, files: str, *, partner: str = "") -> Manifest:
    """The SFTP tests' manifest; acme's drop integration gets ``files`` (YAML lines)."""
    manifest(tmp_path, keys)  # writes interlock.yaml
    path = tmp_path / "interlock.yaml"
    text = path.read_text(encoding="utf-8")
    marker = "      transport: drop\n      format: csv\n      max_size: 64KiB\n"
    assert text.count(marker) == 2  # acme's drop integration, then globex's
    text = text.replace(marker, marker + files, 1)
    text = text.replace("  globex:\n", partner + "  globex:\n", 1)
    path.write_text(text, encoding="utf-8")
    return load_manifest(path)


@dataclass
class Rig:
    """A drop server whose uploads go to the real quarantine of ``acme-drop``."""

    root: Path
    loaded: Manifest
    keys: Keys
    clock: ManualClock = field(default_factory=ManualClock)
    audit: MemorySink = field(default_factory=MemorySink)
    arrivals: list[Arrival] = field(default_factory=list)
    notifier: Notifier | None = None

    def __post_init__(self) -> None:
        self.quarantine = Quarantine(
            self.root, self.loaded, "acme-drop", audit=self.audit, notifier=self.notifier
        )

    async def receive(self, arrival: Arrival) -> Verdict:
        """What the CLI's drop server does: the quarantine's accept with the sidecars."""
        self.arrivals.append(arrival)
        return await self.quarantine.accept(
            arrival.name, arrival.data, sidecars=arrival.sidecars, waited=arrival.waited
        )

    def run(self, scenario: Callable[[DropServer, int], Awaitable[None]]) -> None:
        """Start the drop server, run the scenario, stop it."""

        async def main() -> None:
            server = DropServer(
                self.root,
                self.loaded,
                host_key=private_pem(self.keys.drop_host),
                receive=self.receive,
                audit=self.audit,
                now=self.clock,
            )
            port = await server.start()
            try:
                await scenario(server, port)
            finally:
                await server.stop()

        asyncio.run(main())

    def received(self) -> list[str]:
        """The outcomes of the quarantine's ``files.receive`` entries, with the file named."""
        return [
            f"{entry.details['file']}: {entry.outcome.result}"
            for entry in self.audit.entries
            if entry.action == "files.receive"
        ]

    def waiting(self) -> list[str]:
        """What waits on the drop server for acme-drop."""
        folder = self.root / "waiting" / "acme-drop"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _rig(tmp_path: Path, files: str = "      checksum: sha256-sidecar\n") -> Rig:
    keys = Keys()
    return Rig(tmp_path / "files", sidecar_manifest(tmp_path, keys, files), keys)


async def _put(sftp: asyncssh.SFTPClient, name: str, data: bytes) -> None:
    async with sftp.open(name, "wb") as remote:
        await remote.write(data)


@pytest.mark.processes
@needs_openssh
@pytest.mark.parametrize(
    "order", [(NAME, f"{NAME}.sha256"), (f"{NAME}.sha256", NAME)], ids=["file-first", "sum-first"]
)
def test_openssh_file_and_checksum_in_either_order(tmp_path: Path, order: tuple[str, str]) -> None:
    """OpenSSH's sftp puts the file and its checksum: one file checked, accepted; no sidecar file."""
    rig = _rig(tmp_path)
    (tmp_path / NAME).write_bytes(DATA)
    (tmp_path / f"{NAME}.sha256").write_bytes(CHECKSUM)

    async def scenario(server: DropServer, port: int) -> None:
        status, err = await openssh_sftp(
            tmp_path,
            port=port,
            user="acme",
            key=rig.keys.acme,
            host_key=rig.keys.drop_host,
            batch="".join(f"put {name}\n" for name in order),
        )
        assert status == 0, err

    rig.run(scenario)
    # The sidecar is never a file of its own: one audit entry, one file in processing.
    assert rig.received() == [f"{NAME}: success"]
    assert [path.name for path in rig.quarantine.processing()] == [NAME]
    assert rig.arrivals[0].sidecars == {f"{NAME}.sha256": CHECKSUM}
    assert rig.waiting() == []


@pytest.mark.processes
@needs_openssh
def test_openssh_a_wrong_checksum_refuses_the_file(tmp_path: Path) -> None:
    """An uploaded checksum that does not match: the file is refused, the last put fails."""
    rig = _rig(tmp_path)
    (tmp_path / NAME).write_bytes(DATA)
    (tmp_path / f"{NAME}.sha256").write_bytes(b"0" * 64 + b"  orders.csv\n")

    async def scenario(server: DropServer, port: int) -> None:
        status, err = await openssh_sftp(
            tmp_path,
            port=port,
            user="acme",
            key=rig.keys.acme,
            host_key=rig.keys.drop_host,
            batch=f"put {NAME}\nput {NAME}.sha256\n",
        )
        assert status != 0
        assert "Failure" in err

    rig.run(scenario)
    assert rig.received() == [f"{NAME}: failure"]
    ((_, reasons),) = rig.quarantine.refused()
    assert reasons == ("the SHA-256 checksum does not match the file",)
    assert rig.quarantine.processing() == []


def test_a_file_whose_checksum_never_comes_is_refused_and_the_partner_told(
    tmp_path: Path,
) -> None:
    """After ``sidecar_wait`` the waiting file is refused with the reason; a report in /rejected."""
    keys = Keys()
    loaded = sidecar_manifest(
        tmp_path,
        keys,
        "      checksum: sha256-sidecar\n      sidecar_wait: 10m\n",
        partner="    notify: {drop_outbox: true}\n",
    )
    root = tmp_path / "files"
    audit = MemorySink()
    notifier = Notifier(root, loaded, audit=audit)
    rig = Rig(root, loaded, keys, audit=audit, notifier=notifier)

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, keys, "acme") as sftp:
            await _put(sftp, NAME, DATA)  # accepted for now: it waits
            assert rig.waiting() == [NAME]
            rig.clock.advance(9 * 60)
            assert await server.expire() == 0  # not yet
            assert rig.waiting() == [NAME]
            rig.clock.advance(61)
            assert await server.expire() == 1
            await notifier.wait()
            reports = await sftp.listdir("/rejected")
        _, facts = rig.quarantine.refusals()[0]
        assert report_name(NAME, str(facts["sha256"])) in reports

    rig.run(scenario)
    assert rig.waiting() == []
    assert rig.received() == [f"{NAME}: failure"]
    ((_, reasons),) = rig.quarantine.refused()
    assert reasons == (f"the checksum file {NAME}.sha256 did not arrive within PT10M",)
    (receive,) = [e for e in audit.entries if e.action == "files.receive"]
    assert receive.reason == reasons[0]
    assert [e.outcome.result for e in audit.entries if e.action == "files.notify"] == ["success"]


def test_a_checksum_without_its_file_is_deleted_and_audited(tmp_path: Path) -> None:
    """A lone sidecar waits, then is deleted (audited); it never reaches the quarantine."""
    rig = _rig(tmp_path)

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, rig.keys, "acme") as sftp:
            await _put(sftp, f"{NAME}.sha256", CHECKSUM)
        assert rig.waiting() == [f"{NAME}.sha256"]
        rig.clock.advance(15 * 60)
        assert await server.expire() == 1

    rig.run(scenario)
    assert rig.waiting() == []
    assert rig.arrivals == []
    assert rig.received() == []
    (entry,) = [e for e in rig.audit.entries if e.action == "files.drop.sidecar"]
    assert (entry.outcome.result, entry.actor) == ("failure", "partner:acme")
    assert entry.details == {"file": f"{NAME}.sha256"}
    assert entry.reason == f"the file {NAME} did not arrive within PT15M; its sidecar was deleted"


def test_a_name_already_waiting_is_not_overwritten(tmp_path: Path) -> None:
    """A second upload of a waiting checksum is refused; the first one decides."""
    rig = _rig(tmp_path)

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, rig.keys, "acme") as sftp:
            await _put(sftp, f"{NAME}.sha256", CHECKSUM)
            with pytest.raises(asyncssh.SFTPFailure, match="refused"):
                await _put(sftp, f"{NAME}.sha256", b"f" * 64 + b"\n")
            await _put(sftp, NAME, DATA)

    rig.run(scenario)
    assert rig.received() == [f"{NAME}: success"]
    (entry,) = [e for e in rig.audit.entries if e.action == "files.drop.sidecar"]
    assert entry.reason == "a file of this name is already waiting"


def test_without_declared_sidecars_a_sha256_file_is_just_a_file(tmp_path: Path) -> None:
    """No checksum declared: nothing waits, ``X.sha256`` is a file the pattern takes."""
    rig = _rig(tmp_path, files="")

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, rig.keys, "acme") as sftp:
            await _put(sftp, NAME, DATA)

    rig.run(scenario)
    assert rig.received() == [f"{NAME}: success"]
    assert rig.waiting() == []


def test_a_name_no_drop_integration_takes_is_refused_at_open(tmp_path: Path) -> None:
    """A name outside every pattern of the partner's drop integrations: refused, nothing kept."""
    rig = _rig(tmp_path, files='      pattern: "*.csv"\n      checksum: sha256-sidecar\n')

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, rig.keys, "acme") as sftp:
            with pytest.raises(asyncssh.SFTPFailure, match="no drop integration"):
                await _put(sftp, "orders.txt", DATA)
            await _put(sftp, f"{NAME}.sha256", CHECKSUM)  # the sidecar of a *.csv: taken
            await _put(sftp, NAME, DATA)

    rig.run(scenario)
    assert rig.received() == [f"{NAME}: success"]


@pytest.mark.processes
@pytest.mark.parametrize("good", [True, False], ids=["signed", "signed-other-bytes"])
def test_a_detached_signature_pairs_with_its_file(
    tmp_path: Path, keys: as2_support.Keys, good: bool
) -> None:
    """``signature: detached-cms``: OpenSSL's ``.p7s`` uploaded first, then the file."""
    ssh = Keys()
    signer = (
        f"    signer: {{certificate: 'file:{keys.file('acme.pem')}', "
        f"ca: 'file:{keys.file('ca.pem')}'}}\n"
    )
    loaded = sidecar_manifest(tmp_path, ssh, "      signature: detached-cms\n", partner=signer)
    rig = Rig(tmp_path / "files", loaded, ssh)
    signed = DATA if good else DATA + b"2,b@example.com,4\n"
    signature = as2_support.openssl(
        "cms", "-sign", "-binary", "-signer", keys.file("acme.pem"),
        "-inkey", keys.file("acme.key"), "-outform", "DER", stdin=signed,
    )  # fmt: skip

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, ssh, "acme") as sftp:
            await _put(sftp, f"{NAME}.p7s", signature)
            if good:
                await _put(sftp, NAME, DATA)
            else:
                with pytest.raises(asyncssh.SFTPFailure, match="refused"):
                    await _put(sftp, NAME, DATA)

    rig.run(scenario)
    assert rig.received() == [f"{NAME}: {'success' if good else 'failure'}"]
    assert rig.waiting() == []
    if not good:
        ((stored, reasons),) = rig.quarantine.refused()
        assert "the detached signature is refused" in reasons[0]
        assert (
            json.loads(stored.with_name(stored.name + ".reasons.json").read_text())["file"] == NAME
        )


def test_a_failing_quarantine_leaves_the_other_overdue_files_waiting(tmp_path: Path) -> None:
    """The quarantine fails on the first overdue file: the next one still waits, then is refused."""
    rig = _rig(tmp_path)
    calls: list[str] = []
    receive = rig.receive

    async def failing_once(arrival: Arrival) -> Verdict:
        calls.append(arrival.name)
        if len(calls) == 1:
            raise OSError("the quarantine's disk is full")
        return await receive(arrival)

    rig.receive = failing_once  # type: ignore[method-assign]

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, rig.keys, "acme") as sftp:
            await _put(sftp, "a.csv", DATA)
            await _put(sftp, "b.csv", DATA)
        rig.clock.advance(15 * 60)
        with pytest.raises(OSError, match="disk is full"):
            await server.expire()
        assert rig.waiting() == ["b.csv"]  # a.csv was handed over (and failed there)
        assert await server.expire() == 1

    rig.run(scenario)
    assert calls == ["a.csv", "b.csv"]
    assert rig.waiting() == []
    assert rig.received() == ["b.csv: failure"]


def test_what_waits_for_sidecars_is_bounded_by_waiting_limit(tmp_path: Path) -> None:
    """waiting_limit 100 bytes: a second waiting file that would pass it is refused and
    audited; once the first pair completes, room is made again."""
    rig = _rig(tmp_path, files="      checksum: sha256-sidecar\n      waiting_limit: 100\n")
    other = "other.csv"

    async def scenario(server: DropServer, port: int) -> None:
        async with partner_sftp(port, rig.keys, "acme") as sftp:
            await _put(sftp, NAME, DATA)  # 40 bytes wait
            with pytest.raises(asyncssh.SFTPFailure, match="refused"):
                await _put(sftp, other, DATA * 2)  # 80 more would make 120
            await _put(sftp, f"{NAME}.sha256", CHECKSUM)  # completes the pair: nothing waits
            await _put(sftp, other, DATA * 2)  # now it fits

    rig.run(scenario)
    assert rig.received() == [f"{NAME}: success"]
    assert rig.waiting() == [other]
    (entry,) = [e for e in rig.audit.entries if e.action == "files.drop.sidecar"]
    assert entry.reason == "more than 100 bytes would wait for their sidecars"
    assert entry.details["file"] == other
