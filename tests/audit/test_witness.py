"""The HTTPS witness: a real C2SP tlog-witness over verified TLS receives every tree head.

The witness here is a small ``add-checkpoint`` server on a TLS certificate from
a CA made for the test. Like a real witness it checks the checkpoint's
signature and origin, refuses an old size it does not hold (409 with its own
size) and verifies the consistency proof from the checkpoint it holds before
it accepts a new one. Cosigning is left out: the log ignores the answer's body.
"""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from interlock.audit.errors import AuditError
from interlock.audit.service import AuditLog
from interlock.audit.witness import HttpsWitness
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.proofs.checkpoint import Checkpoint, open_checkpoint
from interlock.proofs.errors import CheckpointError, ProofError
from interlock.proofs.note import NoteVerifier
from interlock.proofs.rfc9162 import verify_consistency
from interlock.testing.tls import LocalTls, make_tls
from tests.audit.conftest import sample_entry


class _RefusedError(Exception):
    """The witness's answer to a checkpoint it does not accept."""

    def __init__(self, status: int, answer: bytes = b"") -> None:
        super().__init__(status)
        self.status, self.answer = status, answer


class TlogWitness:
    """A C2SP tlog-witness ``add-checkpoint`` endpoint on TLS; records what it accepted."""

    def __init__(self, tls: LocalTls, port: int = 0) -> None:
        """Serve on ``port`` (0: any) with ``tls``'s certificate."""
        self.ca_file = tls.ca_file
        self.trusted: list[NoteVerifier] = []
        self.held: Checkpoint | None = None
        self.accepted: list[tuple[int, int, int]] = []  # (old size, proof length, new size)
        self.failing = False  # answer 503 to everything (a witness that is down for maintenance)
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
                self._accept(body)
            except _RefusedError as refused:
                return refused.status, refused.answer
        return 200, b""

    def _accept(self, body: str) -> None:
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

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[TlogWitness]:
    """A running witness, stopped afterwards."""
    running = TlogWitness(make_tls(tmp_path / "witness", "Test witness CA"))
    yield running
    running.close()


def _settings(tmp_path: Path, url: str, ca_file: Path) -> Settings:
    """The log on SQLite, its witness named by deployment settings only."""
    return Settings(
        data_dir=tmp_path / "data",
        audit_database_url=f"sqlite:///{tmp_path / 'audit.db'}",
        audit_witness_url=url,
        audit_witness_ca=ca_file,
        audit_timeout_seconds=30.0,  # a loaded test machine, not the witness, sets the pace
    )


def _record(log: AuditLog, numbers: range) -> None:
    for number in numbers:
        log.sink.record(sample_entry(number))


def test_the_https_witness_holds_every_new_tree_head_with_consistency_proved(
    witness: TlogWitness, tmp_path: Path, keyring: Keyring
) -> None:
    """Each batch's checkpoint reaches the witness, which checks signature and consistency."""
    log = AuditLog.open(_settings(tmp_path, witness.url, witness.ca_file), keyring)
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
    witness: TlogWitness, tmp_path: Path, keyring: Keyring
) -> None:
    """A 409 names the witness's size; the log resends with a consistency proof from it."""
    settings = _settings(tmp_path, witness.url, witness.ca_file)
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
    witness: TlogWitness, tmp_path: Path
) -> None:
    """TLS is verified: the witness's certificate must chain to the configured CA."""
    other_ca = make_tls(tmp_path / "other", "Some other CA").ca_file
    client = HttpsWitness(witness.url, other_ca, timeout=5.0)
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.publish("note", 1, lambda old, new: [])
    finally:
        client.close()
    assert witness.accepted == []


def test_a_witness_url_must_be_https() -> None:
    """Plain HTTP is refused when the witness is configured."""
    with pytest.raises(AuditError, match="https"):
        HttpsWitness("http://localhost:1/")


def test_a_witness_error_status_is_raised_to_the_publisher(
    witness: TlogWitness, tmp_path: Path
) -> None:
    """A witness that answers 503 makes ``publish`` fail (the publisher retries later)."""
    witness.failing = True
    client = HttpsWitness(witness.url, witness.ca_file, timeout=5.0)
    try:
        with pytest.raises(AuditError, match="503"):
            client.publish("note", 1, lambda old, new: [])
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
    settings = _settings(tmp_path, f"https://localhost:{port}", tls.ca_file)
    log = AuditLog.open(settings, keyring)
    witness: TlogWitness | None = None
    try:
        assert log.publisher is not None
        with capture_logs() as logs:
            _record(log, range(3))  # each returns once durable, the witness down or not
            assert not log.publisher.flush(timeout=0.5)
        assert log.store.size() == 3
        assert any(e["event"] == "audit_witness_failed" for e in logs)
        holder.close()
        witness = TlogWitness(tls, port)
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
