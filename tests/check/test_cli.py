"""``interlock check``: exit codes, text statuses, waivers and validate's errors."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.check.results import Finding
from interlock.cli import check as check_cli
from interlock.cli.main import main
from tests.check.conftest import Write
from tests.config.test_files_manifest import as2_manifest

NO_LIMIT = (
    "scope: orders.write\n        rate_limit: {per_client: 10/min}\n",
    "scope: orders.write\n",
)
NO_SCHEMA = (
    "        request_schema:\n          type: object\n          additionalProperties: false\n"
    "          properties: {id: {type: string}}\n",
    "        request_fields: [id]\n",
)


def test_a_passing_manifest_exits_0_with_text_statuses(
    write_manifest: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    """Statuses are words, not colour alone; the summary counts each integration."""
    assert main(["check", "--manifest", str(write_manifest())]) == 0
    out = capsys.readouterr().out
    assert "pass" in out
    assert "evidence?" in out  # encryption at rest
    assert "Security checklist (interlock check)" in out
    assert "encryption_at_rest: the key-encryption key's backend" in out


def test_a_high_failure_exits_1_and_names_the_line(
    write_manifest: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    """input_validation is high: the default --fail-on high fails the run."""
    path = write_manifest(NO_SCHEMA)
    assert main(["check", "--manifest", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    line = (
        path.read_text().splitlines().index("      - method: POST") + 1
    )  # the route mapping starts at its first key
    assert f"{path}:{line}:9: FAIL: sync input_validation:" in out


def test_fail_on_compares_the_items_severity(write_manifest: Write) -> None:
    """A medium failure (rate limiting) passes at high and fails at medium."""
    path = str(write_manifest(NO_LIMIT))
    assert main(["check", "--manifest", path]) == 0
    assert main(["check", "--manifest", path, "--fail-on", "medium"]) == 1


def test_a_waiver_file_turns_the_failure_into_waived(
    write_manifest: Write, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A waived failure shows as such and does not fail the run."""
    waivers = tmp_path / "waivers.yaml"
    expires = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()  # the CLI's today
    waivers.write_text(
        "waivers:\n  - item: input_validation\n    integration: sync\n"
        f"    reason: the CRM validates itself\n    owner: ops@example.de\n    expires: {expires}\n"
    )
    path = str(write_manifest(NO_SCHEMA))
    assert main(["check", "--manifest", path, "--waivers", str(waivers)]) == 0
    assert "waived" in capsys.readouterr().out


def test_an_expired_waiver_fails_the_run(write_manifest: Write, tmp_path: Path) -> None:
    """Expired yesterday or long ago: the failure counts."""
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(
        "waivers:\n  - item: input_validation\n    integration: sync\n"
        "    reason: r\n    owner: ops@example.de\n    expires: 2000-01-01\n"
    )
    path = str(write_manifest(NO_SCHEMA))
    assert main(["check", "--manifest", path, "--waivers", str(waivers)]) == 1


def test_a_malformed_waiver_file_exits_2_with_one_line(
    write_manifest: Write, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad input: no scorecard, one located line."""
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text("waivers:\n  - item: input_validation\n")
    assert main(["check", "--manifest", str(write_manifest()), "--waivers", str(waivers)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().count("\n") == 0
    assert f"{waivers}:2:5: waivers[0]: integration is required" in captured.err


def test_an_invalid_manifest_prints_validates_messages_and_exits_2(
    write_manifest: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every located error, as validate prints it; no scorecard on stdout."""
    path = write_manifest(
        ("url: https://erp.example.de", "url: http://erp.example.de"),
        ("ca: pki:internal", "ca: none"),
    )
    assert main(["check", "--manifest", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:6:10: systems.erp.url: upstream must use https://" in captured.err
    assert "systems.erp.ca: ca cannot switch certificate verification off" in captured.err
    assert "error[manifest_invalid]" in captured.err


@pytest.mark.parametrize("form", ["table", "json", "sarif"])
def test_a_partner_url_with_a_password_is_never_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    """The manifest is refused (exit 2) and no output carries the password."""
    password = "pw-" + os.urandom(6).hex()
    path = tmp_path / "interlock.yaml"
    path.write_text(as2_manifest(url=f"https://acme:{password}@as2.acme.example/as2"))
    assert main(["check", "--manifest", str(path), "--format", form]) == 2
    captured = capsys.readouterr()
    assert "partners.acme.as2.url: URL must not carry credentials" in captured.err
    assert password not in captured.out + captured.err


@pytest.mark.parametrize("target", ["missing/report.json", "."])
def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(
    write_manifest: Write, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    """A missing directory or a directory as -o: one clear line, exit status 2 (not 70)."""
    path = write_manifest()
    output = tmp_path / target
    assert main(["check", "--manifest", str(path), "--format", "json", "-o", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("interlock: error[output]: cannot write "), err
    assert len(err.splitlines()) == 1, err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_unknown_integration_exits_2(
    write_manifest: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    """--integration names one that exists, or the run stops."""
    assert main(["check", "--manifest", str(write_manifest()), "--integration", "nope"]) == 2
    assert "unknown integration 'nope' (known: sync)" in capsys.readouterr().err


def test_live_options_need_live(write_manifest: Write, capsys: pytest.CaptureFixture[str]) -> None:
    """--gateway without --live is a usage error, not silently ignored."""
    path = str(write_manifest())
    assert main(["check", "--manifest", path, "--gateway", "https://127.0.0.1:8443"]) == 2
    assert "add --live" in capsys.readouterr().err


def test_live_findings_are_added_and_counted(
    write_manifest: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--live calls the live module's live_findings; a failed live probe fails the run."""
    calls: list[dict[str, object]] = []

    def fake_live(manifest: object, settings: object, **options: object) -> list[Finding]:
        calls.append({k: options[k] for k in ("gateway_url", "source", "ca_file", "deployment")})
        return [Finding("tls_required", "sync", "fail", "erp: certificate expired", live=True)]

    module = type(sys)("interlock.check.live")
    module.live_findings = fake_live  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "interlock.check.live", module)
    monkeypatch.setenv("INTERLOCK_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "card.txt"
    args = ["check", "--manifest", str(write_manifest()), "--live", "-o", str(out)]
    assert main([*args, "--gateway", "https://127.0.0.1:9"]) == 1
    # No `interlock init` in this data directory: the probes get no deployment.
    assert calls == [
        {"gateway_url": "https://127.0.0.1:9", "source": None, "ca_file": None, "deployment": None}
    ]
    assert "erp: certificate expired" in out.read_text()


def test_status_label_reads_waived_for_a_waived_failure() -> None:
    """The words the table and the demo use."""
    assert check_cli.status_label(Finding("retention", "x", "not_applicable", "r")) == "n/a"


def test_live_on_the_gateways_host_hands_the_deployment_and_vault(
    write_manifest: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After interlock init the probes get the deployment, the vault and the sealed columns."""
    received: dict[str, object] = {}

    def fake_live(manifest: object, settings: object, **options: object) -> list[Finding]:
        received.update(options)
        trust = options["trust"]
        assert callable(trust)
        received["context"] = trust("system")
        return []

    module = type(sys)("interlock.check.live")
    module.live_findings = fake_live  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "interlock.check.live", module)
    monkeypatch.setenv("INTERLOCK_DATA_DIR", str(tmp_path / "data"))
    assert main(["init"]) == 0
    assert main(["check", "--manifest", str(write_manifest()), "--live"]) == 0
    assert received["deployment"] is not None
    assert received["vault"] is not None
    assert received["sealed_columns"]
    assert received["context"] is not None
