"""``interlock privacy drift`` over the audit log a real gateway wrote (requests over TLS)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from interlock.cli.main import main
from interlock.testing.gateway import running_gateway
from tests.conftest import isolate_cli

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gateway's work directory after three requests: two forwarded, one refused."""
    workdir = tmp_path_factory.mktemp("drift")
    with running_gateway(workdir) as env:
        token, _ = env.key(["orders.read"])
        assert env.request("GET", "/orders/1001", {"X-API-Key": token})[0] == 200
        assert env.request("GET", "/v/orders/1001", {"X-API-Key": token})[0] == 200
        assert env.request("GET", "/orders/1001", {"X-API-Key": "ilk_nope"})[0] == 401
    # Stopped: every entry, best effort ones included, is written and under a tree head.
    return workdir


@pytest.fixture(autouse=True)
def _deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, trail: Path) -> None:
    """The CLI reads the gateway's deployment (its audit log in the data directory)."""
    isolate_cli(monkeypatch, tmp_path, DATA_DIR=str(trail / "data"))


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["privacy", "drift", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_manifest_the_gateway_ran_shows_no_drift_and_the_unused_routes(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0; never-used routes and integrations listed; volumes counted per integration."""
    status, out, err = _run(capsys, "--manifest", str(trail / "interlock.yaml"), "--format", "json")
    assert status == 0, err
    report = json.loads(out)
    assert report["undeclared"] == []
    unused = {(u["kind"], u["integration"], u["value"]) for u in report["unused"]}
    assert ("route", "order-sync", "GET /slow") in unused
    assert ("integration", "crm-feed", "crm-feed") in unused
    assert ("route", "order-sync", "GET /orders/{id}") not in unused
    assert ("route", "validated", "GET /v/orders/{id}") not in unused
    volumes = {v["integration"]: v for v in report["volumes"]}
    assert (volumes["order-sync"]["forwarded"], volumes["order-sync"]["refused"]) == (1, 1)
    assert volumes["order-sync"]["bytes"] > 0
    assert volumes["validated"]["forwarded"] == 1
    assert report["entries"]["analysed"] == 3


def test_a_manifest_lacking_an_observed_route_and_category_exits_1_naming_them(
    trail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The route was renamed and the category dropped since: both are listed as undeclared."""
    text = (trail / "interlock.yaml").read_text()
    changed = text.replace("data_categories: [user.contact.email]", "data_categories: []")
    changed = changed.replace("path: /v/orders/{id}", "path: /v/orders-2/{id}")
    assert changed.count("/v/orders-2/") == 1
    manifest = tmp_path / "changed.yaml"
    manifest.write_text(changed)
    status, out, err = _run(capsys, "--manifest", str(manifest))
    assert status == 1, err
    assert "Observed but not declared" in out
    assert "user.contact.email" in out
    assert "GET /v/orders/{id}" in out  # not cut at the terminal width
    assert "GET /v/orders-2/{id}" in out  # declared, never used
    assert "2 undeclared flows" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "a while"), "--since"),
        (("--since", "0d"), "--since"),
        (("--format", "xml"), "xml"),
        (("--manifest", "/nonexistent/interlock.yaml"), "nonexistent"),
    ],
)
def test_usage_errors_exit_2(
    trail: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    """A bad option or manifest: exit 2 (not 1, which means drift), one message."""
    manifest = ("--manifest", str(trail / "interlock.yaml"))
    status, _, err = _run(capsys, *manifest, *args)
    assert status == 2
    assert message in err


def test_no_audit_log_is_no_report(
    trail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deployment without an audit log: exit 2, the setting named."""
    monkeypatch.setenv("INTERLOCK_DATA_DIR", str(tmp_path / "empty"))
    status, _, err = _run(capsys, "--manifest", str(trail / "interlock.yaml"))
    assert status == 2
    assert "INTERLOCK_AUDIT_DATABASE_URL" in err


def test_a_log_that_fails_verification_is_no_report(
    trail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy of the trail with one body rewritten (triggers dropped): exit 2, entry named."""
    data = tmp_path / "tampered"
    data.mkdir()
    copy = data / "audit.db"
    shutil.copyfile(trail / "data" / "audit.db", copy)
    with sqlite3.connect(copy) as connection:
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            connection.execute(f"DROP TRIGGER {name}")
        changed = connection.execute(
            "UPDATE audit_bodies SET body = CAST(replace(CAST(body AS TEXT), 'order-sync', "
            "'order-snc') AS BLOB) WHERE CAST(body AS TEXT) LIKE '%gateway.request%'"
        ).rowcount
    connection.close()
    assert changed > 0
    monkeypatch.setenv("INTERLOCK_DATA_DIR", str(data))
    status, out, err = _run(capsys, "--manifest", str(trail / "interlock.yaml"))
    assert status == 2
    assert out == ""
    assert "error[audit_verification_failed]" in err
    assert "does not match its leaf hash" in err
