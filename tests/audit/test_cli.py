"""`interlock audit`: verify, key, prove, consistency, export, verify-export, prune, errors."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from interlock.audit.service import AuditLog
from interlock.cli.main import main
from interlock.config.settings import load_settings
from interlock.crypto import Keyring
from interlock.crypto.ed25519 import Ed25519Signer
from interlock.proofs.checkpoint import open_checkpoint
from interlock.proofs.cosignature import CosignatureVerifier, cosign
from interlock.proofs.note import NoteVerifier
from interlock.proofs.rfc9162 import verify_consistency, verify_inclusion
from interlock.store.deployment import open_deployment
from interlock.store.manifest_versions import publish_manifest
from tests.audit.conftest import sample_entry
from tests.conftest import isolate_cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "interlock.yaml"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Own data directory, a witness file, no inherited INTERLOCK_* settings."""
    isolate_cli(monkeypatch, tmp_path, AUDIT_WITNESS_FILE=str(tmp_path / "witness"))


@pytest.fixture
def recorded(capsys: pytest.CaptureFixture[str]) -> Path:
    """An initialised deployment whose audit log holds 10 entries; returns the audit DB."""
    assert main(["init"]) == 0
    settings = load_settings()
    log = AuditLog.open(settings, Keyring.load(settings.keyring_path))
    for i in range(10):
        log.sink.record(sample_entry(i))
    log.close()
    capsys.readouterr()
    return Path(settings.audit_url.removeprefix("sqlite:///"))


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[Path, NoteVerifier]:
    status, out, _ = _run(capsys, "audit", "key")
    assert status == 0
    path = tmp_path / "audit.vkey"
    path.write_text(out)
    return path, NoteVerifier.parse(out)


def test_verify_key_prove_and_consistency(
    recorded: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Verification against the pinned key and the witness; proofs that check out."""
    key_file, verifier = _key(capsys, tmp_path)
    status, out, _ = _run(capsys, "audit", "verify", "--key", str(key_file))
    assert status == 0
    assert out.startswith("ok: 10 entries")
    assert "1 witnessed" in out

    status, out, _ = _run(capsys, "audit", "prove", "3")
    proof = json.loads(out)
    head = open_checkpoint(proof["checkpoint"], [verifier])
    leaf = base64.b64decode(proof["leaf_hash"])
    verify_inclusion(3, head.size, leaf, [base64.b64decode(p) for p in proof["proof"]], head.root)

    status, out, _ = _run(capsys, "audit", "consistency", "3", "10")
    data = json.loads(out)
    old = open_checkpoint(data["old_checkpoint"], [verifier])
    new = open_checkpoint(data["new_checkpoint"], [verifier])
    verify_consistency(3, 10, old.root, new.root, [base64.b64decode(p) for p in data["proof"]])


def test_verify_reports_which_tree_heads_each_witness_cosigned(
    recorded: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Kept cosignatures are listed per witness, checked under ``--witness-key``; a bad key
    text is a one-line error."""
    settings = load_settings()
    log = AuditLog.open(settings, Keyring.load(settings.keyring_path), witnesses=[])
    signer = Ed25519Signer.generate()
    witness = CosignatureVerifier("witness.test/w1", signer.public_key)
    try:
        for head in log.store.checkpoints()[:3] + log.store.checkpoints()[5:6]:
            text = head.note[: head.note.index("\n\n") + 1]
            line = cosign(text, witness.name, signer, 1_790_000_000)
            log.store.add_cosignature(head.size, witness.find(text, line))
    finally:
        log.close()
    status, out, err = _run(capsys, "audit", "verify", "--witness-key", witness.vkey)
    assert status == 0, err
    assert "cosigned by witness.test/w1 (verified): 4 tree heads, sizes 1-3, 6;" in out
    assert "2026-09-21" in out  # the witness's timestamp, as a date
    status, out, _ = _run(capsys, "audit", "verify")
    assert "cosigned by witness.test/w1 (NOT checked: no key given for it)" in out
    status, _, err = _run(capsys, "audit", "verify", "--witness-key", "nonsense")
    assert status != 0
    assert "--witness-key" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_then_verify_offline(
    recorded: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    """An export of a day verifies with only the key; an altered one is refused naming the line."""
    key_file, _ = _key(capsys, tmp_path)
    output = tmp_path / f"day.{fmt}"
    args = (
        "audit",
        "export",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-02",
        "-o",
        str(output),
        "--format",
        fmt,
    )
    status, _, err = _run(capsys, *args)
    assert status == 0, err
    status, out, _ = _run(capsys, "audit", "verify-export", str(output), "--key", str(key_file))
    assert (status, out.split(":")[0]) == (0, "ok")
    output.write_text(output.read_text().replace("req-4", "req-5"))
    status, _, err = _run(capsys, "audit", "verify-export", str(output), "--key", str(key_file))
    assert status == 1
    assert "error[audit_proof_invalid]" in err
    assert len(err.strip().splitlines()) == 1


def test_verify_names_the_first_bad_entry(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One altered entry: exit 1, one line naming it."""
    with sqlite3.connect(recorded) as connection:
        connection.execute("DROP TRIGGER audit_bodies_no_update")
        connection.execute(
            "UPDATE audit_bodies SET body = CAST(replace(CAST(body AS TEXT), 'req-4', 'req-5') AS BLOB) WHERE idx = 4"
        )
    status, _, err = _run(capsys, "audit", "verify")
    assert status == 1
    assert (
        err.strip()
        == "interlock: error[audit_verification_failed]: entry 4 does not match its leaf hash (altered or moved)"
    )


def test_prune_with_the_manifest_retention(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Entries from 2025 are far past 90 days: their bodies go, the log still verifies."""
    status, out, err = _run(
        capsys, "audit", "prune", "--manifest", str(REPO / "examples" / "interlock.yaml")
    )
    assert status == 0, err
    assert "order-sync: 10 bodies" in out
    status, out, _ = _run(capsys, "audit", "verify")
    assert status == 0
    assert "10 pruned" in out


@pytest.fixture
def removed(capsys: pytest.CaptureFixture[str]) -> AuditLog:
    """A deployment whose log holds 6 entries of an integration the manifest no longer has."""
    assert main(["init"]) == 0
    settings = load_settings()
    log = AuditLog.open(settings, Keyring.load(settings.keyring_path))
    for i in range(6):  # from 2025: far past any retention here
        log.sink.record(sample_entry(i, integration="legacy-feed"))
    log.sink.record(sample_entry(9, integration="legacy-feed", time=datetime.now(UTC)))
    log.close()
    capsys.readouterr()
    return log


def _publish_with_legacy_feed(retention: str) -> int:
    """Store a manifest version that still declared legacy-feed (the example's order-sync)."""
    text = EXAMPLE.read_text().replace(
        "integrations:\n  order-sync:\n", "integrations:\n  legacy-feed:\n", 1
    )
    assert "  legacy-feed:" in text
    text = text.replace("    retention: P90D", f"    retention: {retention}", 1)
    deployment = open_deployment(load_settings())
    try:
        return publish_manifest(
            deployment.engine, text, actor="admin:test", now=datetime.now(UTC)
        ).version
    finally:
        deployment.close()


def test_a_removed_integrations_bodies_keep_the_retention_it_was_last_declared_with(
    removed: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    """Gone from the manifest, declared in stored version 2 (30d): its old bodies go.

    Before, prune looked at the manifest's integrations only: the bodies of a
    removed integration were kept for ever, whatever retention it had.
    """
    _publish_with_legacy_feed("P1Y")
    version = _publish_with_legacy_feed("30d")  # the newest that declares it wins
    status, out, err = _run(capsys, "audit", "prune", "--manifest", str(EXAMPLE))
    assert status == 0, err
    assert "legacy-feed: 6 bodies before" in out
    assert f"(removed; retention of manifest version {version})" in out
    status, out, _ = _run(capsys, "audit", "verify")
    assert status == 0
    assert "6 pruned" in out  # the recent one stays


def test_a_removed_integration_nobody_gave_a_retention_keeps_its_bodies_and_fails(
    removed: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    """No stored version declares it: nothing of it is pruned, the command says what to pass."""
    status, out, err = _run(capsys, "audit", "prune", "--manifest", str(EXAMPLE))
    assert status == 1
    assert "kept every body of legacy-feed" in err
    assert "--removed-retention" in err
    assert len(err.strip().splitlines()) == 1
    status, out, _ = _run(capsys, "audit", "verify")
    assert status == 0
    assert "pruned" not in out or "0 pruned" in out
    status, out, err = _run(
        capsys, "audit", "prune", "--manifest", str(EXAMPLE), "--removed-retention", "90d", "--json"
    )
    assert status == 0, err
    (legacy,) = [r for r in json.loads(out)["integrations"] if r["integration"] == "legacy-feed"]
    assert (legacy["pruned"], legacy["removed"]) == (6, True)
    status, _, err = _run(
        capsys, "audit", "prune", "--manifest", str(EXAMPLE), "--removed-retention", "90"
    )
    assert status == 1
    assert "'90' is not a duration" in err


def test_bad_input_is_one_line_naming_the_field(
    recorded: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A missing key file, a bad date, a malformed key: one line each, naming the option."""
    for args, field in (
        (("audit", "verify", "--key", str(tmp_path / "missing.vkey")), "--key"),
        (("audit", "verify", "--key", "a+b+c"), "--key"),
        (
            (
                "audit",
                "export",
                "--from",
                "yesterday",
                "--to",
                "2025-01-02",
                "-o",
                str(tmp_path / "x"),
            ),
            "--from",
        ),
    ):
        status, _, err = _run(capsys, *args)
        assert status == 1
        assert len(err.strip().splitlines()) == 1
        assert field in err


def _hostile(header: str, first: str, name: str) -> str:
    record = json.loads(first)
    cases = {
        "index_string": json.dumps({**record, "index": "0"}),
        "index_null": json.dumps({**record, "index": None}),
        "proof_items": json.dumps({**record, "proof": [1, 2]}),
        "proof_int": json.dumps({**record, "proof": 5}),
        "deep": '{"a":' * 10_000 + "1" + "}" * 10_000,
        "repeated_entry": json.dumps(record)[:-1] + ', "entry": null}',
    }
    return header + cases[name] + "\n"


@pytest.mark.parametrize(
    "name",
    ["index_string", "index_null", "proof_items", "proof_int", "deep", "repeated_entry", "csv"],
)
def test_a_hostile_export_is_one_clear_proof_error(
    recorded: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    """Wrong types, deep nesting, a repeated member, a CSV field over the csv module's
    limit: exit 1 with error[audit_proof_invalid], never an internal error (70)."""
    key_file, _ = _key(capsys, tmp_path)
    fmt = "csv" if name == "csv" else "jsonl"
    output = tmp_path / f"day.{fmt}"
    export = ("audit", "export", "--from", "2025-01-01", "--to", "2025-01-02", "--format", fmt)
    assert _run(capsys, *export, "-o", str(output))[0] == 0
    header, first, *_ = output.read_text().splitlines(keepends=True)
    if name == "csv":
        output.write_text(header + '0,"' + "A\n" * 70_000 + '"\n')
    else:
        output.write_text(_hostile(header, first, name))
    status, _, err = _run(capsys, "audit", "verify-export", str(output), "--key", str(key_file))
    assert status == 1
    assert err.startswith("interlock: error[audit_proof_invalid]: ")
    assert len(err.strip().splitlines()) == 1


def test_a_configured_witness_file_that_is_missing_fails_verification(
    recorded: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Deleting the witness file must not switch its check off: exit 1, naming the file."""
    witness = tmp_path / "witness"
    assert _run(capsys, "audit", "verify")[0] == 0
    witness.unlink()
    status, _, err = _run(capsys, "audit", "verify")
    assert status == 1
    assert err.startswith("interlock: error[audit_verification_failed]: ")
    assert f"witness file {witness} is missing" in err


def test_an_empty_log_needs_no_witness_file_yet(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Nothing recorded, nothing published: the configured file's absence is no failure."""
    assert main(["init"]) == 0
    settings = load_settings()
    AuditLog.open(settings, Keyring.load(settings.keyring_path)).close()
    assert not (tmp_path / "witness").exists()
    capsys.readouterr()
    status, out, err = _run(capsys, "audit", "verify")
    assert (status, out.split(":")[0]) == (0, "ok"), err
