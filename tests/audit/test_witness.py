"""The HTTPS witness: a C2SP tlog-witness test double, over verified TLS, gets every tree head.

The witness here is not a deployed witness implementation but a test double
written for this test: a small ``add-checkpoint`` server on a TLS certificate
from a CA made for the test. Following the C2SP tlog-witness spec it checks
the checkpoint's signature and origin, refuses an old size it does not hold (409 with its own
size) and verifies the consistency proof from the checkpoint it holds before
it accepts a new one; it answers with its Ed25519 ``cosignature/v1`` of the
checkpoint (C2SP tlog-cosignature), which the log verifies and keeps.
"""

from __future__ import annotations

import base64
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, create_engine
from structlog.testing import capture_logs

from interlock.audit.errors import AuditError, AuditVerificationError
from interlock.audit.service import AuditLog
from interlock.audit.verify import verify_log
from interlock.audit.witness import FileWitness, HttpsWitness, read_witness_file
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.crypto.ed25519 import Ed25519Signer
from interlock.proofs.checkpoint import Checkpoint, open_checkpoint
from interlock.proofs.cosignature import CosignatureVerifier, cosign
from interlock.proofs.errors import CheckpointError, ProofError
from interlock.proofs.note import NoteVerifier
from interlock.proofs.rfc9162 import verify_consistency
from interlock.testing.tls import LocalTls, make_tls
from tests.audit.conftest import sample_entry

_NOTE = "example.test/log\n1\nAAAA\n\n\u2014 example.test/log AAAA\n"  # a note's shape only


class _RefusedError(Exception):
    """The witness's answer to a checkpoint it does not accept."""

    def __init__(self, status: int, answer: bytes = b"") -> None:
        super().__init__(status)
        self.status, self.answer = status, answer


class TlogWitnessDouble:
    """A test double of a C2SP tlog-witness ``add-checkpoint`` endpoint on TLS; records what it accepted."""

    def __init__(self, tls: LocalTls, port: int = 0) -> None:
        """Serve on ``port`` (0: any) with ``tls``'s certificate."""
        self.ca_file = tls.ca_file
        self.trusted: list[NoteVerifier] = []
        self.held: Checkpoint | None = None
        self.accepted: list[tuple[int, int, int]] = []  # (old size, proof length, new size)
        self.failing = False  # answer 503 to everything (a witness that is down for maintenance)
        self.signer = Ed25519Signer.generate()
        self.cosigner = CosignatureVerifier("witness.test/w1", self.signer.public_key)
        # "cosign": a real cosignature; "empty": 200 with no body (what the log used to accept);
        # "impostor": a line under the witness's name and key ID by another key.
        self.answer = "cosign"
        self.lock = threading.Lock()
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, answer = witness.add_checkpoint(self.path, body.decode())
                self.send_response(status)
                self.send_header("Content-Type", "text/x.tlog.size")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.socket = tls.server_context().wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://localhost:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def add_checkpoint(self, path: str, body: str) -> tuple[int, bytes]:
        """C2SP tlog-witness: ``old N``, proof lines, a blank line, the signed checkpoint."""
        if path != "/add-checkpoint":
            return 404, b""
        if self.failing:
            return 503, b""
        with self.lock:
            try:
                text = self._accept(body)
            except _RefusedError as refused:
                return refused.status, refused.answer
        if self.answer == "empty":
            return 200, b""
        signer = self.signer if self.answer == "cosign" else Ed25519Signer.generate()
        line = cosign(text, self.cosigner.name, signer, int(time.time()))
        if self.answer == "impostor":
            name, encoded = line.rsplit(" ", 1)
            raw = base64.b64decode(encoded)
            line = f"{name} {base64.b64encode(self.cosigner.key_id + raw[4:]).decode()}"
        return 200, (line + "\n").encode()

    def _accept(self, body: str) -> str:
        head, _, note = body.partition("\n\n")
        old_line, *proof_lines = head.split("\n")
        old = int(old_line.removeprefix("old "))
        proof = [base64.b64decode(line, validate=True) for line in proof_lines]
        try:
            new = open_checkpoint(note, self.trusted)
        except CheckpointError:
            raise _RefusedError(403) from None
        held_size = 0 if self.held is None else self.held.size
        if old != held_size:
            raise _RefusedError(409, f"{held_size}\n".encode())
        if self.held is None:
            if proof:
                raise _RefusedError(400)
        elif new.origin != self.held.origin:
            raise _RefusedError(403)
        else:
            try:
                verify_consistency(old, new.size, self.held.root, new.root, proof)
            except ProofError:
                raise _RefusedError(422) from None
        self.held = new
        self.accepted.append((old, len(proof), new.size))
        return note[: note.index("\n\n") + 1]

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[TlogWitnessDouble]:
    """A running witness, stopped afterwards."""
    running = TlogWitnessDouble(make_tls(tmp_path / "witness", "Test witness CA"))
    yield running
    running.close()


def _settings(tmp_path: Path, url: str, ca_file: Path, key: CosignatureVerifier) -> Settings:
    """The log on SQLite, its witness (and the witness's key) named by deployment settings."""
    return Settings(
        data_dir=tmp_path / "data",
        audit_database_url=f"sqlite:///{tmp_path / 'audit.db'}",
        audit_witness_url=url,
        audit_witness_ca=ca_file,
        audit_witness_key=key.vkey,
        audit_timeout_seconds=30.0,  # a loaded test machine, not the witness, sets the pace
    )


def _record(log: AuditLog, numbers: range) -> None:
    for number in numbers:
        log.sink.record(sample_entry(number))


def test_the_https_witness_holds_every_new_tree_head_with_consistency_proved(
    witness: TlogWitnessDouble, tmp_path: Path, keyring: Keyring
) -> None:
    """Each batch's checkpoint reaches the witness, which checks signature and consistency."""
    log = AuditLog.open(
        _settings(tmp_path, witness.url, witness.ca_file, witness.cosigner), keyring
    )
    try:
        witness.trusted.append(log.keys.verifier)
        for number in range(5):
            _record(log, range(number, number + 1))
            assert log.publisher is not None
            assert log.publisher.flush(timeout=10.0)
        latest = log.latest_checkpoint()
    finally:
        log.close()
    assert latest is not None
    assert witness.held == Checkpoint(log.keys.origin, 5, latest.root)
    # The first from the empty tree with no proof, then every step proven from the last.
    assert witness.accepted[0][:2] == (0, 0)
    assert all(old > 0 and length > 0 for old, length, _ in witness.accepted[1:])
    assert [new for _, _, new in witness.accepted] == sorted({n for *_, n in witness.accepted})


def test_a_restarted_log_catches_the_witness_up_from_the_size_it_reports(
    witness: TlogWitnessDouble, tmp_path: Path, keyring: Keyring
) -> None:
    """A 409 names the witness's size; the log resends with a consistency proof from it."""
    settings = _settings(tmp_path, witness.url, witness.ca_file, witness.cosigner)
    first = AuditLog.open(settings, keyring)
    witness.trusted.append(first.keys.verifier)
    try:
        _record(first, range(2))
    finally:
        first.close()
    assert witness.held is not None
    assert witness.held.size == 2
    second = AuditLog.open(settings, keyring)  # knows nothing of the witness's state
    try:
        _record(second, range(2, 4))
        assert second.publisher is not None
        assert second.publisher.flush(timeout=10.0)
    finally:
        second.close()
    assert witness.held.size == 4
    old, length, new = witness.accepted[-1]
    assert old >= 2
    assert length > 0
    assert new == 4


def test_a_witness_certificate_from_another_ca_is_refused(
    witness: TlogWitnessDouble, tmp_path: Path
) -> None:
    """TLS is verified: the witness's certificate must chain to the configured CA."""
    other_ca = make_tls(tmp_path / "other", "Some other CA").ca_file
    client = HttpsWitness(witness.url, witness.cosigner, other_ca, timeout=5.0)
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.publish(_NOTE, 1, lambda old, new: [])
    finally:
        client.close()
    assert witness.accepted == []


def test_a_witness_url_must_be_https() -> None:
    """Plain HTTP is refused when the witness is configured."""
    with pytest.raises(AuditError, match="https"):
        HttpsWitness("http://localhost:1/", CosignatureVerifier("w", bytes(32)))


def test_a_witness_error_status_is_raised_to_the_publisher(
    witness: TlogWitnessDouble, tmp_path: Path
) -> None:
    """A witness that answers 503 makes ``publish`` fail (the publisher retries later)."""
    witness.failing = True
    client = HttpsWitness(witness.url, witness.cosigner, witness.ca_file, timeout=5.0)
    try:
        with pytest.raises(AuditError, match="503"):
            client.publish(_NOTE, 1, lambda old, new: [])
    finally:
        client.close()


def _closed_port() -> socket.socket:
    """A bound, non-listening socket: connections to its port are refused."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    return holder


def test_an_unreachable_witness_delays_no_append_and_is_caught_up_once_back(
    tmp_path: Path, keyring: Keyring
) -> None:
    """Appends stay durable and prompt while the witness is down; a warning is logged and
    the newest tree head reaches the witness when it is back (docs/audit.md, Witnesses)."""
    holder = _closed_port()
    port = holder.getsockname()[1]
    tls = make_tls(tmp_path / "witness", "Test witness CA")
    signer = Ed25519Signer.generate()
    key = CosignatureVerifier("witness.test/w1", signer.public_key)
    settings = _settings(tmp_path, f"https://localhost:{port}", tls.ca_file, key)
    log = AuditLog.open(settings, keyring)
    witness: TlogWitnessDouble | None = None
    try:
        assert log.publisher is not None
        with capture_logs() as logs:
            _record(log, range(3))  # each returns once durable, the witness down or not
            assert not log.publisher.flush(timeout=0.5)
        assert log.store.size() == 3
        assert any(e["event"] == "audit_witness_failed" for e in logs)
        holder.close()
        witness = TlogWitnessDouble(tls, port)
        witness.signer, witness.cosigner = signer, key
        witness.trusted.append(log.keys.verifier)
        _record(log, range(3, 4))  # a newer tree head ends the back-off at once
        assert log.publisher.flush(timeout=10.0)
    finally:
        log.close()
        holder.close()
        if witness is not None:
            witness.close()
    assert witness.held is not None
    assert witness.held.size == 4


def test_the_witness_cosignature_is_verified_kept_and_reported(
    witness: TlogWitnessDouble, tmp_path: Path, keyring: Keyring
) -> None:
    """Each answer's cosignature verifies under the configured key, is kept with its tree
    head, and ``verify_log`` says which tree heads the witness cosigned."""
    log = AuditLog.open(
        _settings(tmp_path, witness.url, witness.ca_file, witness.cosigner), keyring
    )
    try:
        witness.trusted.append(log.keys.verifier)
        for number in range(3):
            _record(log, range(number, number + 1))
            assert log.publisher is not None
            assert log.publisher.flush(timeout=10.0)
        kept = log.store.cosignatures()
        report = verify_log(log.store.engine, cosigners=[witness.cosigner])
    finally:
        log.close()
    assert [(c.size, c.witness) for c in kept] == [(n, "witness.test/w1") for n in (1, 2, 3)]
    (cosigned,) = report.cosigned
    assert (cosigned.witness, cosigned.sizes, cosigned.verified) == (
        "witness.test/w1",
        (1, 2, 3),
        True,
    )
    # Without the witness's key the cosignatures are listed, marked as not checked.
    unchecked = verify_log(_engine(tmp_path))
    assert [c.verified for c in unchecked.cosigned] == [False]


def _engine(tmp_path: Path) -> Engine:
    return create_engine(f"sqlite:///{tmp_path / 'audit.db'}")


@pytest.mark.parametrize("answer", ["empty", "impostor"])
def test_an_answer_without_the_witness_cosignature_is_refused_and_retried(
    witness: TlogWitnessDouble, tmp_path: Path, keyring: Keyring, answer: str
) -> None:
    """A 200 with no cosignature, or with one made by another key under the witness's name and
    key ID, proves nothing: it is refused (warning logged), nothing is kept, and the tree head
    counts as not yet witnessed."""
    witness.answer = answer
    log = AuditLog.open(
        _settings(tmp_path, witness.url, witness.ca_file, witness.cosigner), keyring
    )
    try:
        witness.trusted.append(log.keys.verifier)
        assert log.publisher is not None
        with capture_logs() as logs:
            _record(log, range(1))
            assert not log.publisher.flush(timeout=1.0)
        assert log.store.cosignatures() == []
        witness.answer = "cosign"  # the witness mends its ways: the next tree head is kept
        _record(log, range(1, 2))
        assert log.publisher.flush(timeout=10.0)
        assert [c.size for c in log.store.cosignatures()] == [2]
    finally:
        log.close()
    failures = [e for e in logs if e["event"] == "audit_witness_failed"]
    assert failures
    assert "not a valid cosignature" in failures[0]["error"]


def test_a_witness_holding_a_larger_tree_is_refused(
    witness: TlogWitnessDouble, tmp_path: Path, keyring: Keyring
) -> None:
    """A witness that already holds a larger tree of this log means the log was rolled back
    (or forked): the publication fails loudly instead of quietly catching up."""
    settings = Settings(
        data_dir=tmp_path / "data", audit_database_url=f"sqlite:///{tmp_path / 'audit.db'}"
    )
    log = AuditLog.open(settings, keyring, witnesses=[])
    try:
        _record(log, range(2))
        latest = log.latest_checkpoint()
        witness.trusted.append(log.keys.verifier)
    finally:
        log.close()
    assert latest is not None
    witness.held = Checkpoint(log.keys.origin, 7, bytes(32))
    client = HttpsWitness(witness.url, witness.cosigner, witness.ca_file, timeout=5.0)
    try:
        with pytest.raises(AuditError, match=r"larger tree \(7\) than the log \(2\)"):
            client.publish(latest.note, latest.size, lambda old, new: [])
    finally:
        client.close()


def test_a_witness_url_without_its_key_is_refused_by_the_settings(tmp_path: Path) -> None:
    """Configuring a witness whose answers cannot be checked is a configuration error."""
    with pytest.raises(ValidationError, match="INTERLOCK_AUDIT_WITNESS_KEY"):
        Settings(data_dir=tmp_path, audit_witness_url="https://witness.example")
    with pytest.raises(ValidationError, match="0x04"):
        Settings(
            data_dir=tmp_path,
            audit_witness_url="https://witness.example",
            audit_witness_key="w+00000000+" + base64.b64encode(b"\x01" + bytes(32)).decode(),
        )


def test_a_tampered_kept_cosignature_fails_verification(
    witness: TlogWitnessDouble, tmp_path: Path, keyring: Keyring
) -> None:
    """A cosignature rewritten in the database (triggers dropped) does not verify."""
    log = AuditLog.open(
        _settings(tmp_path, witness.url, witness.ca_file, witness.cosigner), keyring
    )
    try:
        witness.trusted.append(log.keys.verifier)
        _record(log, range(1))
        assert log.publisher is not None
        assert log.publisher.flush(timeout=10.0)
    finally:
        log.close()
    other = Ed25519Signer.generate()
    with sqlite3.connect(tmp_path / "audit.db") as connection:
        connection.execute("DROP TRIGGER audit_cosignatures_no_update")
        (line,) = connection.execute("SELECT line FROM audit_cosignatures").fetchone()
        name, encoded = line.rsplit(" ", 1)
        raw = base64.b64decode(encoded)
        forged = raw[:12] + other.sign(b"anything")
        connection.execute(
            "UPDATE audit_cosignatures SET line = ?",
            (f"{name} {base64.b64encode(forged).decode()}",),
        )
    with pytest.raises(AuditVerificationError, match="does not verify under its key"):
        verify_log(_engine(tmp_path), cosigners=[witness.cosigner])


def test_the_file_witness_never_goes_backwards_nor_takes_another_logs_checkpoint(
    tmp_path: Path, keyring: Keyring
) -> None:
    """A smaller tree head, or one of another log (a path shared by mistake), leaves the held
    checkpoint as it was."""
    settings = Settings(
        data_dir=tmp_path / "data", audit_database_url=f"sqlite:///{tmp_path / 'audit.db'}"
    )
    log = AuditLog.open(settings, keyring, witnesses=[])
    try:
        _record(log, range(3))
        heads = log.store.checkpoints()
    finally:
        log.close()
    path = tmp_path / "witness.checkpoint"
    held = FileWitness(path)
    held.publish(heads[2].note, 3, lambda old, new: [])
    with pytest.raises(AuditError, match=r"larger tree \(3\) than this one \(2\)"):
        held.publish(heads[1].note, 2, lambda old, new: [])
    other = heads[2].note.replace(log.keys.origin, "other.example/log", 1)
    with pytest.raises(AuditError, match="another log's checkpoint"):
        held.publish(other, 4, lambda old, new: [])
    assert read_witness_file(path) == heads[2].note
    held.publish(heads[2].note, 3, lambda old, new: [])  # the same head again is fine
