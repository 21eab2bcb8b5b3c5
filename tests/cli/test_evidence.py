"""Admin actions through the CLI are on the audit trail (who, what, outcome; never a secret)."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select

from interlock.actors import Operator
from interlock.audit.entry import MAX_DETAIL_TEXT
from interlock.audit.schema import BODIES
from interlock.cli.evidence import admin_action, admin_actor, note_result, record_admin_action
from interlock.config.settings import load_settings
from tests.cli.test_clients import _isolated, _run, manifest

__all__ = ["_isolated", "manifest"]


def _entries() -> list[dict[str, Any]]:
    engine = create_engine(load_settings().audit_url)
    try:
        if not inspect(engine).has_table(BODIES.name):
            return []  # nothing was ever recorded
        with engine.connect() as connection:
            rows = connection.execute(select(BODIES.c.body).order_by(BODIES.c.idx)).all()
    finally:
        engine.dispose()
    return [json.loads(row.body) for row in rows]


def test_issuing_a_secret_is_recorded_without_the_secret(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(
        capsys, "clients", "create", "app", "--lifetime", "2d", "-m", str(manifest)
    )
    assert status == 0
    (entry,) = [e for e in _entries() if e["action"] == "admin.clients.create"]
    assert entry["actor"].startswith("admin:")
    assert entry["outcome"] == {"result": "success", "status": 0}
    assert entry["details"]["command"] == f"clients create app --lifetime 2d -m {manifest}"
    assert out.strip() not in json.dumps(_entries())


def test_a_failed_action_is_recorded_as_a_failure(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, _ = _run(capsys, "signature-keys", "revoke", "no-such-key", "-m", str(manifest))
    assert status == 1
    (entry,) = [e for e in _entries() if e["action"] == "admin.signature-keys.revoke"]
    assert entry["outcome"] == {"result": "failure", "status": 1}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("secrets", "grant", "nobody", "erp/*", "read"), "not_found"),
        (("pki", "issue", "client", "nobody", "--out", "certs"), "not_found"),
        (("keys", "revoke", "ilk_not-a-key"), "invalid_request"),
        (("clients", "rotate-secret", "app"), "invalid_request"),
    ],
    ids=["secrets-grant", "pki-issue", "keys-revoke", "rotate-secret"],
)
def test_a_refused_action_records_the_reason(
    manifest: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], code: str
) -> None:
    """Issue 17, "Bad input": a refusal is on the trail with its reason, not only "failure"."""
    if args[:2] == ("clients", "rotate-secret"):
        for _ in range(2):  # two active secrets: a third would end a still-valid one
            assert _run(capsys, "clients", "rotate-secret", "app", "-m", str(manifest))[0] == 0
    status, _, err = _run(capsys, *args, "-m", str(manifest))
    assert status == 1
    assert err.startswith(f"interlock: error[{code}]: ")
    action = f"admin.{args[0]}.{args[1]}"
    entry = [e for e in _entries() if e["action"] == action][-1]
    assert entry["outcome"] == {"result": "failure", "status": 1}
    assert entry["reason"] == err.removeprefix("interlock: ").strip()[:2000]


def test_a_credential_refused_as_an_argument_is_recorded_by_kind_only(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reason names the argument and the credential's kind, never the credential."""
    _, token, _ = _run(capsys, "keys", "create", "legacy", "-m", str(manifest))
    token = token.strip()
    status, _, _ = _run(capsys, "secrets", "grant", "app", token, "read", "-m", str(manifest))
    assert status == 1
    (entry,) = [e for e in _entries() if e["action"] == "admin.secrets.grant"]
    assert entry["reason"].startswith("error[credential_in_argument]: argument 4 is a credential")
    assert token not in json.dumps(entry)
    assert token.rsplit("_", 1)[1] not in json.dumps(entry)


def test_reading_commands_and_help_are_not_recorded(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "clients", "list", "-m", str(manifest))
    _run(capsys, "clients", "create", "--help")
    assert not [e for e in _entries() if e["action"].startswith("admin.clients")]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data-dir", "x", "keys", "revoke", "k1"], ("admin.keys.revoke", "keys revoke k1")),
        (
            ["--debug", "pki", "issue", "client", "erp", "--lifetime=3d"],
            ("admin.pki.issue", "pki issue client erp --lifetime=3d"),
        ),
        (["keys", "list"], None),
        (["validate", "m.yaml"], None),
    ],
)
def test_which_commands_are_admin_actions(
    args: list[str], expected: tuple[str, str] | None
) -> None:
    assert admin_action(args) == expected


def test_the_kill_switch_records_what_it_ended(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``clients revoke`` puts its counts on the trail, not only its command line."""
    _run(capsys, "clients", "create", "app", "-m", str(manifest))
    _run(capsys, "signature-keys", "create", "app", "--hmac", "-m", str(manifest))
    status, _, _ = _run(capsys, "clients", "revoke", "app", "-m", str(manifest))
    assert status == 0
    (entry,) = [e for e in _entries() if e["action"] == "admin.clients.revoke"]
    details = entry["details"]
    assert (details["client_secrets"], details["signature_keys"], details["api_keys"]) == (1, 1, 0)
    assert (details["certificates"], details["vault_grants"]) == ("none", "none")
    assert details["tokens_issued_until"].startswith("20")
    assert details["command"] == f"clients revoke app -m {manifest}"
    # The next recorded command does not inherit these fields.
    _run(capsys, "clients", "create", "app", "-m", str(manifest))
    (created, *_) = [e for e in _entries() if e["action"] == "admin.clients.create"][-1:]
    assert set(created["details"]) == {"command"}


@pytest.mark.parametrize("variable", ["LOGNAME", "USER", "LNAME", "USERNAME"])
def test_the_actor_is_the_process_user_not_an_environment_variable(
    manifest: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    """Operators' roles (the dead-letter role, the vault's audit) follow this name: the
    kernel's user id names it, not a variable anyone starting the command can set."""
    real = pwd.getpwuid(os.geteuid()).pw_name
    monkeypatch.setenv(variable, f"{real}-impersonated")
    assert admin_actor() == Operator(f"admin:{real}")
    status, _, _ = _run(capsys, "clients", "create", "app", "--lifetime", "2d", "-m", str(manifest))
    assert status == 0
    (entry,) = [e for e in _entries() if e["action"] == "admin.clients.create"]
    assert entry["actor"] == f"admin:{real}"


def test_a_noted_detail_over_the_entry_limit_is_recorded_truncated(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kill switch noting 13 certificate serials (over 500 characters): the action is on
    the trail with the value cut to the entry's limit, and main() returns, never raises."""
    serials = ", ".join(f"{i:040x}" for i in range(13))
    note_result(certificates=serials)
    status, _, err = _run(capsys, "clients", "create", "app", "-m", str(manifest))
    assert status == 0, err
    (entry,) = [e for e in _entries() if e["action"] == "admin.clients.create"]
    assert entry["details"]["certificates"] == serials[:MAX_DETAIL_TEXT]


def test_an_entry_the_model_refuses_is_a_problem_returned_not_raised(manifest: Path) -> None:
    """More noted fields than an entry holds: record_admin_action says it is not on record."""
    note_result(**{f"field_{i}": i for i in range(40)})
    problem = record_admin_action(load_settings(), ["clients", "create", "app"], 0)
    assert problem is not None
    assert problem.startswith("admin.clients.create ran but is not on the audit trail")
    assert "\n" not in problem
