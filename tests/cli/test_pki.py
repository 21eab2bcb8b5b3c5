"""`interlock pki`: files written 0600 and never overwritten, monitoring exit codes, offline root."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509

from interlock.cli.main import main
from tests.conftest import isolate_cli

# The clients these tests issue certificates for; `legacy` may not use mutual TLS.
MANIFEST = """\
version: 1
systems:
  erp: {url: "https://erp.internal", location: DE}
roles:
  reader: {scopes: [orders.read]}
clients:
  app: {auth: [mtls], roles: [reader]}
  order-sync: {auth: [oauth2, mtls], roles: [reader]}
  cron: {auth: [mtls], roles: [reader]}
  short: {auth: [mtls], roles: [reader]}
  long: {auth: [mtls], roles: [reader]}
  legacy: {auth: [api_key], roles: [reader]}
integrations:
  f:
    source: erp
    target: erp
    client: legacy
    purpose: test
    legal_basis: contract
    retention: 1d
    routes:
      - {method: GET, path: "/a", upstream: erp, scope: orders.read}
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test gets its own data directory, a manifest and no inherited INTERLOCK_* settings."""
    manifest = tmp_path / "interlock.yaml"
    manifest.write_text(MANIFEST)
    isolate_cli(monkeypatch, tmp_path, TRUST_DOMAIN="corp.test", MANIFEST=str(manifest))


@pytest.fixture
def out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """An initialised deployment and an empty output directory."""
    assert main(["init"]) == 0
    capsys.readouterr()
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _serial(output: str) -> str:
    return output.split("certificate ", 1)[1].split(maxsplit=1)[0]


def test_issue_client_writes_a_private_key_and_the_chain(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """NAME.key is 0600; NAME.pem holds the leaf with the SPIFFE ID, then the intermediate."""
    status, stdout, _ = _run(capsys, "pki", "issue", "client", "order-sync", "--out", str(out))
    assert status == 0
    assert "spiffe://corp.test/client/order-sync" in stdout
    key, chain = out / "order-sync.key", out / "order-sync.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    leaf, intermediate = x509.load_pem_x509_certificates(chain.read_bytes())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://corp.test/client/order-sync"
    ]
    assert leaf.issuer == intermediate.subject


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("stranger", "no client 'stranger' in the manifest"),
        ("legacy", "may not use mutual TLS"),
    ],
)
def test_issue_client_refuses_a_name_the_gateway_would_not_accept(
    out: Path, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    """Issue 17: a client not in the manifest, or without mtls, gets no certificate (and no file)."""
    status, _, stderr = _run(capsys, "pki", "issue", "client", name, "--out", str(out))
    assert status == 1
    assert message in stderr
    assert stderr.count("\n") == 1
    assert list(out.iterdir()) == []
    _, stdout, _ = _run(capsys, "pki", "list", "--json")
    assert json.loads(stdout)["certificates"] == []


def test_existing_files_are_never_overwritten(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second issue into the same directory fails on one line and issues nothing."""
    assert _run(capsys, "pki", "issue", "server", "api.test", "--out", str(out))[0] == 0
    before = (out / "api.test.key").read_bytes()
    status, _, stderr = _run(capsys, "pki", "issue", "server", "api.test", "--out", str(out))
    assert status == 1
    assert stderr.count("\n") == 1
    assert "already exists; refusing to overwrite" in stderr
    assert (out / "api.test.key").read_bytes() == before
    _, stdout, _ = _run(capsys, "pki", "list", "--json")
    assert len(json.loads(stdout)["certificates"]) == 1


def test_errors_are_one_line(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad lifetimes, names, reasons and serials: error[code] on one line, exit 1."""
    cases = [
        (["pki", "issue", "client", "app", "--lifetime", "91d", "--out", str(out)], "90 days"),
        (["pki", "issue", "client", "App", "--out", str(out)], "not a client name"),
        (["pki", "issue", "client", "app", "--lifetime", "soon", "--out", str(out)], "duration"),
        (["pki", "revoke", "abc"], "error[not_found]"),
        (["pki", "revoke", "abc", "--reason", "certificateHold"], "revocation reason"),
        (["pki", "renew", "--out", str(out)], "either a SERIAL or --within"),
    ]
    for args, message in cases:
        status, _, stderr = _run(capsys, *args)
        assert status == 1, args
        assert message in stderr
        assert stderr.startswith("interlock: error[")
        assert stderr.count("\n") == 1


def test_list_expiring_exits_1_only_when_something_is_due(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """For monitoring: 0 with nothing due, 1 with a certificate in use expiring in the window."""
    assert _run(capsys, "pki", "issue", "client", "app", "--out", str(out))[0] == 0
    status, stdout, _ = _run(capsys, "pki", "list", "--expiring", "14d")
    assert status == 0
    assert "app" not in stdout
    assert (
        _run(capsys, "pki", "issue", "client", "cron", "--lifetime", "12h", "--out", str(out))[0]
        == 0
    )
    status, stdout, stderr = _run(capsys, "pki", "list", "--expiring", "14d", "--json")
    assert status == 1
    assert [c["name"] for c in json.loads(stdout)["certificates"]] == ["cron"]
    assert "1 certificate(s) in use expire within 14d" in stderr
    status, stdout, _ = _run(capsys, "pki", "list")
    assert status == 0
    assert "spiffe://corp.test/client/app" in stdout
    assert "active" in stdout


def test_renew_within_renews_what_is_due_and_then_nothing(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cron form: renews each due certificate into new files; a second run is a no-op."""
    _run(capsys, "pki", "issue", "client", "short", "--lifetime", "2h", "--out", str(out))
    _run(capsys, "pki", "issue", "client", "long", "--out", str(out))
    renewed = tmp_path / "renewed"
    renewed.mkdir()
    status, stdout, _ = _run(capsys, "pki", "renew", "--within", "1d", "--out", str(renewed))
    assert status == 0
    assert "renewed client" in stdout
    assert "(short," in stdout
    assert sorted(p.name for p in renewed.iterdir()) == ["short.key", "short.pem"]
    status, stdout, _ = _run(capsys, "pki", "renew", "--within", "1h", "--out", str(tmp_path))
    assert (status, stdout.strip()) == (0, "no certificate in use expires within 1h")
    _, stdout, _ = _run(capsys, "pki", "list", "--json")
    listed = sorted((c["name"], c["status"]) for c in json.loads(stdout)["certificates"])
    assert listed == [("long", "active"), ("short", "active"), ("short", "renewed")]


def test_revoke_then_crl_lists_it(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Revocation is idempotent; the CRL written to a file names the serial and reason."""
    _, stdout, _ = _run(capsys, "pki", "issue", "client", "app", "--out", str(out))
    serial = _serial(stdout)
    status, stdout, _ = _run(capsys, "pki", "revoke", serial.upper(), "--reason", "keyCompromise")
    assert (status, f"revoked client certificate {serial} (app): keyCompromise") == (
        0,
        stdout.strip(),
    )
    status, stdout, _ = _run(capsys, "pki", "revoke", serial)
    assert status == 0
    assert "already revoked (keyCompromise" in stdout
    crl_file = tmp_path / "crl.pem"
    assert _run(capsys, "pki", "crl", "--out", str(crl_file))[0] == 0
    crl = x509.load_pem_x509_crl(crl_file.read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise


def test_export_root_needs_yes_and_root_signing_waits_for_import(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline root: issuing goes on, renew-intermediate is refused until import-root."""
    root_file = tmp_path / "root.key"
    status, _, stderr = _run(capsys, "pki", "export-root", "--out", str(root_file))
    assert status == 1
    assert "--yes" in stderr
    assert not root_file.exists()
    assert _run(capsys, "pki", "export-root", "--out", str(root_file), "--yes")[0] == 0
    assert stat.S_IMODE(root_file.stat().st_mode) == 0o600
    assert _run(capsys, "pki", "issue", "client", "app", "--out", str(out))[0] == 0
    status, _, stderr = _run(capsys, "pki", "renew-intermediate")
    assert status == 1
    assert "error[root_key_offline]" in stderr
    assert _run(capsys, "pki", "import-root", str(root_file))[0] == 0
    status, stdout, _ = _run(capsys, "pki", "renew-intermediate")
    assert status == 0
    assert "new issuing CA" in stdout
