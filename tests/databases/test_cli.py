"""``interlock db`` end to end on MariaDB (real passwords): vault, rotation, audit trail, exits."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from interlock.cli.main import main
from interlock.databases import mariadb
from interlock.databases.connection import Login
from interlock.secret import Secret
from tests.conftest import isolate_cli
from tests.databases.conftest import INTEGRATION, Shared


def _put(monkeypatch: pytest.MonkeyPatch, name: str, value: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(value)))
    assert main(["secrets", "put", name, "--kind", "database_password"]) == 0


def test_plan_prints_the_sql_without_a_server(
    maria: Shared, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "plan", INTEGRATION, "-m", str(maria.path)]) == 0
    out = capsys.readouterr().out
    assert "(mariadb, statement by statement)" in out
    assert "SQL SECURITY DEFINER VIEW" in out
    assert "WITH CASCADED CHECK OPTION" in out


def test_apply_audit_snapshot_diff(
    maria: Shared,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    isolate_cli(monkeypatch, tmp_path, AUDIT_TIMEOUT_SECONDS="30")
    assert main(["init"]) == 0
    admin = {"username": maria.admin.username, "password": maria.admin.password.reveal().decode()}
    _put(monkeypatch, "db/shared-admin", json.dumps(admin).encode())
    manifest = ["-m", str(maria.path)]
    capsys.readouterr()

    assert main(["db", "apply", INTEGRATION, *manifest]) == 0
    out = capsys.readouterr().out
    assert "secret://db/crm-customers/crm-sync: version 2 is current" in out
    assert "secret://db/crm-customers/billing: version 2 is current" in out

    # The consumer logs in with what the vault holds, and reads its view.
    assert main(["secrets", "get", "db/crm-customers/crm-sync", "--reveal"]) == 0
    value = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    login = Login(value["username"], Secret(value["password"].encode()))
    schema = maria.plan.consumers[0].schema
    with mariadb.connect(maria.plan, login, schema) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers")
        assert cursor.fetchone() == (2,)

    assert main(["db", "audit", INTEGRATION, *manifest]) == 0
    assert "no drift" in capsys.readouterr().out
    with mariadb.connect(maria.plan, maria.admin) as connection, connection.cursor() as cursor:
        cursor.execute("GRANT SELECT ON *.* TO %s@'%%'", (value["username"],))
    assert main(["db", "audit", *manifest, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)["integrations"]
    assert [entry["integration"] for entry in report] == [INTEGRATION]
    assert [(d["role"], d["privilege"]) for d in report[0]["drift"]] == [
        (value["username"], "global SELECT")
    ]
    # The checklist's live evidence sees the same drift.
    assert main(["check", *manifest, "--live", "-f", "json"]) == 1
    findings = json.loads(capsys.readouterr().out)
    live = [
        f
        for f in findings["findings"]
        if f["item"] == "least_privilege" and f.get("live") and f["integration"] == INTEGRATION
    ]
    assert [f["status"] for f in live] == ["fail"]

    snap = tmp_path / "snapshot.json"
    assert main(["db", "snapshot", INTEGRATION, "-o", str(snap), *manifest]) == 0
    capsys.readouterr()
    assert main(["db", "diff", INTEGRATION, "--snapshot", str(snap), *manifest]) == 0
    assert "no change since the snapshot" in capsys.readouterr().out
    with mariadb.connect(maria.plan, maria.admin) as connection, connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE `{maria.source}`.`customers` DROP COLUMN email")
    assert main(["db", "diff", INTEGRATION, "--snapshot", str(snap), *manifest]) == 1
    assert (
        f"breaking: {maria.source}.customers.email: dropped or renamed" in capsys.readouterr().out
    )

    # The apply is on the audit trail.
    exported = tmp_path / "audit.jsonl"
    window = ["--from", "2000-01-01T00:00:00Z", "--to", "2999-01-01T00:00:00Z"]
    assert (
        main(["audit", "export", "-o", str(exported), *window, "--integration", INTEGRATION]) == 0
    )
    text = exported.read_text(encoding="utf-8")
    assert "databases.apply" in text, text[:2000]
    assert value["password"] not in text
