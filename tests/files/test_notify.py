"""Partners told of refused files: the drop server's /rejected, SFTP upload, a signed webhook.

Real components throughout: Interlock's drop server read by asyncssh's and OpenSSH's
SFTP clients, an asyncssh SFTP server standing in for the partner's (host key pinned),
and an HTTPS receiver with a certificate from a CA the test makes, checking Interlock's
RFC 9421 signature with the key its JWKS publishes.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest
from joserfc.jwk import ECKey

from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.errors import ConfigError
from interlock.files.drop_server import Arrival, DropServer
from interlock.files.notify import REPORT_SUFFIX, Notifier, report_name, summary
from interlock.files.quarantine import Quarantine, check_name
from interlock.files.sftp import upload_report
from interlock.gateway.tls import trust_context
from interlock.oauth.signing_keys import SigningKeys
from interlock.sdk.rfc9421 import RequestSigner, SignedRequests
from interlock.store import initialise
from interlock.testing.tls import LocalTls, https_server, make_tls
from tests.files.sftp_support import (
    Keys,
    PartnerServer,
    manifest,
    private_pem,
)
from tests.files.test_drop_server import needs_openssh, openssh_sftp, partner_sftp
from tests.privacy.test_webhook_connector import Handler, verify

# Invalid UTF-8: the quarantine refuses it as a CSV file, with a reason.
BAD = b"order_id,total\n1,\xff\xfe\n"
GOOD = b"order_id,email,total\n1,a@example.com,3\n"


def notify_manifest(tmp_path: Path, keys: Keys, notify: str, *, sftp_port: int = 2222) -> Manifest:
    """The SFTP tests' manifest, partner acme with ``notify: NOTIFY`` (flow YAML)."""
    manifest(tmp_path, keys, sftp_port=sftp_port)  # writes interlock.yaml
    path = tmp_path / "interlock.yaml"
    text = path.read_text(encoding="utf-8").replace(
        "  globex:\n", f"    notify: {notify}\n  globex:\n", 1
    )
    path.write_text(text, encoding="utf-8")
    return load_manifest(path)


class Sleeps:
    """The notifier's sleep: records each wait; runs ``first`` on the first (the receiver comes up)."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.first: Any = None

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.first is not None:
            self.first, run = None, self.first
            run()


def notify_entries(audit: MemorySink) -> list[Any]:
    """The audit's ``files.notify`` entries."""
    return [entry for entry in audit.entries if entry.action == "files.notify"]


def test_the_drop_partner_reads_its_rejection_report_on_the_drop_server(tmp_path: Path) -> None:
    """A refused upload: the report appears in /rejected, readable by asyncssh, never the file."""
    keys = Keys()
    loaded = notify_manifest(tmp_path, keys, "{drop_outbox: true}")
    audit = MemorySink()
    root = tmp_path / "files"
    notifier = Notifier(root, loaded, audit=audit)
    quarantine = Quarantine(root, loaded, "acme-drop", audit=audit, notifier=notifier)

    async def receive(arrival: Arrival) -> Any:
        return await quarantine.accept(arrival.name, arrival.data)

    async def main() -> None:
        server = DropServer(
            root, loaded, host_key=private_pem(keys.drop_host), receive=receive, audit=audit
        )
        port = await server.start()
        try:
            async with partner_sftp(port, keys, "acme") as sftp:
                with pytest.raises(asyncssh.SFTPFailure, match="refused"):
                    await _put(sftp, "orders.csv", BAD)
                await _put(sftp, "fine.csv", GOOD)
                await notifier.wait()
                listed = await sftp.listdir("/rejected")
                (stored, facts) = quarantine.refusals()[0]
                name = report_name("orders.csv", facts["sha256"])  # type: ignore[arg-type]
                assert sorted(listed) == [".", "..", name]
                async with sftp.open(f"/rejected/{name}", "rb") as remote:
                    body = await remote.read()
                # the partner may read its reports, nothing more
                for denied in (
                    sftp.remove(f"/rejected/{name}"),
                    _put(sftp, f"rejected/{name}", b"x"),
                ):
                    with pytest.raises(asyncssh.SFTPError):
                        await denied
            async with partner_sftp(port, keys, "globex") as other:  # no notify: no /rejected
                with pytest.raises(asyncssh.SFTPError):
                    await other.listdir("/rejected")
        finally:
            await server.stop()
        assert isinstance(body, bytes)
        document = json.loads(body)
        assert document["file"] == "orders.csv"
        assert document["sha256"] == facts["sha256"]
        assert document["size"] == len(BAD)
        assert document["reasons"] == facts["reasons"]
        assert document["reasons"]
        assert document["correlation_id"] == facts["correlation_id"]
        assert document["received_at"] == facts["refused_at"]
        assert b"order_id" not in body  # never the file's content
        told = summary(notifier.state("acme-drop", stored))
        assert told is not None
        assert told["state"] == "sent"
        assert told["at"]
        (entry,) = notify_entries(audit)
        assert entry.outcome.result == "success"
        assert entry.details["way"] == "drop"

    asyncio.run(main())


async def _put(sftp: asyncssh.SFTPClient, path: str, data: bytes) -> None:
    async with sftp.open(path, "wb") as remote:
        await remote.write(data)


@needs_openssh
@pytest.mark.processes
def test_openssh_sftp_fetches_the_report(tmp_path: Path) -> None:
    """OpenSSH's own sftp client lists /rejected and gets the report (an independent peer)."""
    keys = Keys()
    loaded = notify_manifest(tmp_path, keys, "{drop_outbox: true}")
    audit = MemorySink()
    root = tmp_path / "files"
    notifier = Notifier(root, loaded, audit=audit)
    quarantine = Quarantine(root, loaded, "acme-drop", audit=audit, notifier=notifier)

    async def receive(arrival: Arrival) -> Any:
        return await quarantine.accept(arrival.name, arrival.data)

    async def main() -> None:
        server = DropServer(
            root, loaded, host_key=private_pem(keys.drop_host), receive=receive, audit=audit
        )
        port = await server.start()
        try:
            (tmp_path / "orders.csv").write_bytes(BAD)
            status, err = await openssh_sftp(
                tmp_path,
                port=port,
                user="acme",
                key=keys.acme,
                host_key=keys.drop_host,
                batch=f"-put {tmp_path / 'orders.csv'} orders.csv\n",
            )
            await notifier.wait()
            _, facts = quarantine.refusals()[0]
            name = report_name("orders.csv", str(facts["sha256"]))
            target = tmp_path / "got.json"
            status, err = await openssh_sftp(
                tmp_path,
                port=port,
                user="acme",
                key=keys.acme,
                host_key=keys.drop_host,
                batch=f"ls /rejected\nget /rejected/{name} {target}\n",
            )
            assert status == 0, err
        finally:
            await server.stop()
        assert json.loads(target.read_bytes())["file"] == "orders.csv"

    asyncio.run(main())


@pytest.fixture
def tls(tmp_path: Path) -> LocalTls:
    """A CA made by the test, and a certificate for localhost."""
    return make_tls(tmp_path / "tls")


@pytest.fixture
def signing(tmp_path: Path) -> Iterator[SigningKeys]:
    """Interlock's OAuth signing keys (ES256) on a SQLite deployment."""
    created = initialise(
        Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 's.db'}")
    )
    keys = SigningKeys(created.engine, created.keyring, "ES256")
    keys.ensure()
    yield keys
    created.close()


def webhook_notifier(
    root: Path, loaded: Manifest, audit: MemorySink, signing: SigningKeys, sleep: Sleeps
) -> Notifier:
    """A notifier whose webhook requests are signed with ``signing`` (as the CLI wires it)."""

    def auth() -> httpx.Auth:
        current = signing.signer()
        assert isinstance(current.key, ECKey)
        return SignedRequests(RequestSigner(current.kid, current.key))

    return Notifier(
        root,
        loaded,
        audit=audit,
        trust=lambda ca: trust_context(ca, {}),
        auth=auth,
        sleep=sleep,
    )


def free_port() -> int:
    """A port nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_webhook_is_retried_until_the_receiver_is_up_and_answers(
    tmp_path: Path, tls: LocalTls, signing: SigningKeys
) -> None:
    """Down, then 503, then 200: three audited attempts, backing off, each signed; file kept."""
    keys = Keys()
    port = free_port()
    loaded = notify_manifest(
        tmp_path,
        keys,
        f'{{webhook: {{url: "https://localhost:{port}/rejections", ca: "file:{tls.ca_file}"}},'
        " backoff: 2s, attempts: 5}",
    )
    audit = MemorySink()
    root = tmp_path / "files"
    sleeps = Sleeps()
    notifier = webhook_notifier(root, loaded, audit, signing, sleeps)
    quarantine = Quarantine(root, loaded, "acme-drop", audit=audit, notifier=notifier)
    Handler.seen = []
    Handler.script = [(503, b"busy", 0)]
    with ExitStack() as stack:
        sleeps.first = lambda: stack.enter_context(https_server(Handler, tls, port))

        async def main() -> None:
            verdict = await quarantine.accept("orders.csv", BAD)
            assert not verdict.accepted
            await notifier.wait()

        asyncio.run(main())
    assert sleeps.waits == [2.0, 4.0]  # the back-off doubles
    assert len(Handler.seen) == 2  # the first attempt found nobody listening
    stored, facts = quarantine.refusals()[0]
    for seen in Handler.seen:
        covered = verify(seen, port, signing)
        assert '"content-digest"' in covered
        assert seen.headers["Idempotency-Key"] == facts["correlation_id"]
    document = json.loads(Handler.seen[-1].body)
    assert document["reasons"] == facts["reasons"]
    assert document["file"] == "orders.csv"
    results = [(e.outcome.result, e.details["attempt"]) for e in notify_entries(audit)]
    assert results == [("failure", 1), ("failure", 2), ("success", 3)]
    told = summary(notifier.state("acme-drop", stored))
    assert told is not None
    assert told["state"] == "sent"
    assert (root / "refused" / "acme-drop" / stored).exists()


def test_a_webhook_that_never_answers_leaves_the_refusal_and_resume_delivers(
    tmp_path: Path, tls: LocalTls, signing: SigningKeys
) -> None:
    """Out of attempts: marked failed, the file and reasons stay; resume() delivers later."""
    keys = Keys()
    port = free_port()
    loaded = notify_manifest(
        tmp_path,
        keys,
        f'{{webhook: {{url: "https://localhost:{port}/r", ca: "file:{tls.ca_file}"}},'
        " backoff: 1s, attempts: 2}",
    )
    audit = MemorySink()
    root = tmp_path / "files"
    notifier = webhook_notifier(root, loaded, audit, signing, Sleeps())
    quarantine = Quarantine(root, loaded, "acme-drop", audit=audit, notifier=notifier)

    async def refuse() -> None:
        await quarantine.accept("orders.csv", BAD)
        await notifier.wait()

    asyncio.run(refuse())
    stored, facts = quarantine.refusals()[0]
    told = summary(notifier.state("acme-drop", stored))
    assert told is not None
    assert told["state"] == "failed"
    assert told["ways"][0]["attempts"] == 2
    assert "could not be reached" in told["ways"][0]["error"]
    assert (root / "refused" / "acme-drop" / stored).exists()
    assert facts["reasons"]
    assert [e.outcome.result for e in notify_entries(audit)] == ["failure", "failure"]
    Handler.seen, Handler.script = [], []
    with https_server(Handler, tls, port):
        assert asyncio.run(notifier.resume("acme-drop")) == 1
    told = summary(notifier.state("acme-drop", stored))
    assert told is not None
    assert told["state"] == "sent"
    assert len(Handler.seen) == 1


def test_a_webhook_whose_certificate_does_not_chain_to_its_ca_is_not_sent(
    tmp_path: Path, tls: LocalTls, signing: SigningKeys
) -> None:
    """TLS is verified: a receiver with a certificate from another CA gets nothing."""
    other = make_tls(tmp_path / "other", name="Another CA")
    keys = Keys()
    port = free_port()
    loaded = notify_manifest(
        tmp_path,
        keys,
        f'{{webhook: {{url: "https://localhost:{port}/r", ca: "file:{tls.ca_file}"}}, attempts: 1}}',
    )
    audit = MemorySink()
    notifier = webhook_notifier(tmp_path / "files", loaded, audit, signing, Sleeps())
    quarantine = Quarantine(tmp_path / "files", loaded, "acme-drop", audit=audit, notifier=notifier)
    Handler.seen = []

    async def refuse() -> None:
        await quarantine.accept("orders.csv", BAD)
        await notifier.wait()

    with https_server(Handler, other, port):
        asyncio.run(refuse())
    assert Handler.seen == []
    (entry,) = notify_entries(audit)
    assert entry.outcome.result == "failure"
    assert "did not verify" in (entry.reason or "")


def test_the_report_is_uploaded_to_the_partners_sftp_server(tmp_path: Path) -> None:
    """sftp_path: uploaded over the pinned-host-key client; a repeat counts as delivered."""
    keys = Keys()
    partner_root = tmp_path / "partner"
    (partner_root / "rejections").mkdir(parents=True)

    async def main() -> None:
        async with PartnerServer(partner_root, keys.partner_host, keys.client) as port:
            loaded = notify_manifest(tmp_path, keys, "{sftp_path: /rejections}", sftp_port=port)
            audit = MemorySink()
            root = tmp_path / "files"

            async def upload(partner: Any, directory: str, name: str, data: bytes) -> None:
                await upload_report(partner.sftp, private_pem(keys.client), directory, name, data)

            notifier = Notifier(root, loaded, audit=audit, sftp_upload=upload)
            quarantine = Quarantine(root, loaded, "acme-drop", audit=audit, notifier=notifier)
            await quarantine.accept("orders.csv", BAD)
            await notifier.wait()
            await quarantine.accept("orders.csv", BAD)  # the same bytes again: told again
            await notifier.wait()
            stored, facts = quarantine.refusals()[0]
            told = summary(notifier.state("acme-drop", stored))
            assert told is not None
            assert told["state"] == "sent"
            name = report_name("orders.csv", str(facts["sha256"]))
            assert [p.name for p in (partner_root / "rejections").iterdir()] == [name]
            document = json.loads((partner_root / "rejections" / name).read_bytes())
            assert document["correlation_id"] == facts["correlation_id"]
            assert [e.outcome.result for e in notify_entries(audit)] == ["success", "success"]

    asyncio.run(main())


def test_purge_forgets_the_notification_and_the_drop_report(tmp_path: Path) -> None:
    """A refused file past retention goes with its delivery state and its /rejected report."""
    keys = Keys()
    loaded = notify_manifest(tmp_path, keys, "{drop_outbox: true}")
    audit = MemorySink()
    root = tmp_path / "files"
    notifier = Notifier(root, loaded, audit=audit)
    quarantine = Quarantine(root, loaded, "acme-drop", audit=audit, notifier=notifier)

    async def refuse() -> None:
        await quarantine.accept("orders.csv", BAD)
        await notifier.wait()

    asyncio.run(refuse())
    stored, _ = quarantine.refusals()[0]
    assert len(list(notifier.outbox("acme").iterdir())) == 1
    spec = loaded.integrations["acme-drop"].files
    assert spec is not None
    past = datetime.now(UTC) + spec.quarantine_retention + timedelta(days=1)
    later = Quarantine(root, loaded, "acme-drop", audit=audit, notifier=notifier, now=lambda: past)
    assert later.purge() == 1
    assert notifier.state("acme-drop", stored) is None
    assert list(notifier.outbox("acme").iterdir()) == []


@pytest.mark.parametrize(
    ("notify", "problem"),
    [
        ("{}", "at least one of drop_outbox, sftp_path or webhook"),
        ('{webhook: {url: "http://x.example/r"}}', "url"),
        ("{drop_outbox: true, attempts: 0}", "attempts"),
    ],
)
def test_a_bad_notify_section_is_refused(tmp_path: Path, notify: str, problem: str) -> None:
    """The manifest names what is wrong."""
    with pytest.raises(ConfigError, match=problem):
        notify_manifest(tmp_path, Keys(), notify)


def test_report_names_stay_within_the_name_limit_and_apart() -> None:
    """A name of up to 200 bytes gets a report name that is one too (it had 231 before);
    two long names sharing their start keep apart, a short name is unchanged."""
    first, second = "a" * 196 + ".csv", "a" * 196 + ".txt"
    digest = "0" * 64
    reports = {report_name(name, digest) for name in (first, second, "é" * 99 + ".csv")}
    assert len(reports) == 3
    for name in reports:
        assert check_name(name) is None, name
        assert name.endswith(f".{digest[:16]}{REPORT_SUFFIX}")
    assert report_name(first, digest) == report_name(first, digest)
    assert report_name("orders.csv", digest) == f"orders.csv.{digest[:16]}{REPORT_SUFFIX}"


def test_a_long_named_files_report_is_read_and_uploaded(tmp_path: Path) -> None:
    """A refused file whose name has 200 bytes: its report can be read from /rejected and is
    uploaded over SFTP (the report name was too long for both before)."""
    keys = Keys()
    long_name = "o" * 196 + ".csv"
    partner_root = tmp_path / "partner"
    (partner_root / "rejections").mkdir(parents=True)

    async def main() -> None:
        async with PartnerServer(partner_root, keys.partner_host, keys.client) as sftp_port:
            loaded = notify_manifest(
                tmp_path, keys, "{drop_outbox: true, sftp_path: /rejections}", sftp_port=sftp_port
            )
            audit = MemorySink()
            root = tmp_path / "files"

            async def upload(partner: Any, directory: str, name: str, data: bytes) -> None:
                await upload_report(partner.sftp, private_pem(keys.client), directory, name, data)

            notifier = Notifier(root, loaded, audit=audit, sftp_upload=upload, sleep=Sleeps())
            quarantine = Quarantine(root, loaded, "acme-drop", audit=audit, notifier=notifier)
            await quarantine.accept(long_name, BAD)
            await notifier.wait()
            (_, facts) = quarantine.refusals()[0]
            name = report_name(long_name, str(facts["sha256"]))
            assert [p.name for p in (partner_root / "rejections").iterdir()] == [name]
            server = DropServer(
                root, loaded, host_key=private_pem(keys.drop_host), receive=_never, audit=audit
            )
            port = await server.start()
            try:
                async with partner_sftp(port, keys, "acme") as sftp:
                    assert name in await sftp.listdir("/rejected")
                    async with sftp.open(f"/rejected/{name}", "rb") as remote:
                        body = await remote.read()
            finally:
                await server.stop()
            assert isinstance(body, bytes)
            assert json.loads(body)["file"] == long_name
            assert {e.outcome.result for e in notify_entries(audit)} == {"success"}

    asyncio.run(main())


async def _never(arrival: Arrival) -> Any:
    raise AssertionError("nothing is uploaded in this test")
