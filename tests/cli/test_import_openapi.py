"""``interlock import-openapi``: summary and warnings on stderr, one-line errors, safe writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from interlock.cli.main import main
from tests.config.test_openapi_import import MANIFEST, SPEC_30, SPEC_31
from tests.conftest import isolate_cli


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No inherited INTERLOCK_* settings; the default manifest is the test's own."""
    isolate_cli(monkeypatch, tmp_path, MANIFEST=str(tmp_path / "interlock.yaml"))


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """The test manifest (two integrations, comments) at INTERLOCK_MANIFEST."""
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST)
    return path


def spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    """An OpenAPI document in ``tmp_path``."""
    path = tmp_path / name
    path.write_text(text)
    return path


def test_import_writes_routes_and_prints_warnings_and_a_summary(
    tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0; each warning is located in the spec; the last line counts added and replaced."""
    erp = spec(tmp_path, SPEC_30)
    assert main(["import-openapi", str(erp), "--system", "erp", "--integration", "order-sync"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    *lines, summary = err.splitlines()
    assert summary == (
        f"{manifest} (integration order-sync): 4 routes added, 1 replaced, 0 unchanged, 1 warning"
    )
    warnings = [line for line in lines if ": note: " not in line]
    assert len(warnings) == 1
    # One note per proposed data category (issue 19 item 4): Customer.email.
    [note] = [line for line in lines if ": note: " in line]
    assert "proposed data category user.contact.email for 'email'" in note
    assert warnings[0].startswith(f"{erp}:16:")
    assert "X-Request-Id" in warnings[0]
    assert "/api/v2/orders/{order_id}/lines/{line_no}" in manifest.read_text()
    assert main(["validate", str(manifest)]) == 0


def test_second_import_reports_up_to_date_and_leaves_the_file_alone(
    tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-importing the same document is idempotent: same bytes, same inode."""
    shop = spec(tmp_path, SPEC_31)
    args = ["import-openapi", str(shop), "--system", "shop", "--scope-prefix", "catalogue"]
    assert main(args) == 0
    text, inode = manifest.read_text(), manifest.stat().st_ino
    capsys.readouterr()
    assert main(args) == 0
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith("already up to date: 0 routes added, 0 replaced, 3 unchanged, 3 warnings")
    )
    assert manifest.read_text() == text
    assert manifest.stat().st_ino == inode


def test_dry_run_prints_the_routes_as_yaml_and_writes_nothing(
    tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout is the YAML list of generated routes; the manifest keeps its bytes."""
    shop = spec(tmp_path, SPEC_31, "shop.json")
    args = ["import-openapi", str(shop), "--system", "shop", "--scope-prefix", "catalogue"]
    assert main([*args, "--manifest", str(manifest), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    routes = yaml.safe_load(out)
    assert [(r["method"], r["path"]) for r in routes] == [
        ("GET", "/products/{product_id}"),
        ("PUT", "/products/{product_id}"),
        ("POST", "/reviews"),
    ]
    assert "dry run, nothing written: 3 routes added, 0 replaced, 0 unchanged" in err
    assert manifest.read_text() == MANIFEST


def _one_error_line(capsys: pytest.CaptureFixture[str], code: str) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"interlock: error[{code}]: ")
    return lines[0]


@pytest.mark.parametrize(
    "case",
    [
        ('swagger: "2.0"\ninfo: {title: x, version: "1"}\n', "1:10: swagger: ", "Swagger 2.0"),
        ("openapi: 4.0.0\npaths: {}\n", "1:10: openapi: ", "unsupported OpenAPI version"),
        ("openapi: 3.0.3\npaths:\n  /x: {get: [\n", "4:1: ", "invalid YAML"),
        (
            SPEC_30.replace('"#/components/schemas/Line"', '"https://evil.example/line.json"'),
            "79:25: components.schemas.NewOrder.properties.lines.items.$ref: ",
            "remote $ref",
        ),
    ],
)
def test_bad_documents_are_one_located_line_and_the_manifest_is_untouched(
    tmp_path: Path,
    manifest: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, str, str],
) -> None:
    """Swagger 2.0, unknown versions, broken YAML, remote $ref: FILE:LINE:COL: field: message."""
    text, where, reason = case
    path = spec(tmp_path, text)
    assert (
        main(["import-openapi", str(path), "--system", "erp", "--integration", "order-sync"]) == 1
    )
    line = _one_error_line(capsys, "openapi_invalid")
    assert f"{path}:{where}" in line
    assert reason in line
    assert manifest.read_text() == MANIFEST


def test_unknown_system_is_one_line_naming_the_manifest(
    tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The system must be declared; the error points at the systems section."""
    path = spec(tmp_path, SPEC_30)
    assert main(["import-openapi", str(path), "--system", "crm"]) == 1
    line = _one_error_line(capsys, "not_found")
    assert f"{manifest}:4:1: systems: unknown system 'crm'" in line


def test_bad_scope_prefix_is_refused(
    tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The prefix must read as a scope."""
    path = spec(tmp_path, SPEC_31)
    assert (
        main(["import-openapi", str(path), "--system", "shop", "--scope-prefix", "Cat:Alog"]) == 1
    )
    assert "--scope-prefix 'Cat:Alog'" in _one_error_line(capsys, "invalid_request")


def test_result_failing_validation_prints_every_located_error_and_writes_nothing(
    tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No role grants shop.read/shop.write: each problem is listed, then one error line."""
    path = spec(tmp_path, SPEC_31)
    before = manifest.stat()
    assert main(["import-openapi", str(path), "--system", "shop"]) == 1
    err = capsys.readouterr().err.splitlines()
    located = [line for line in err if line.startswith(f"{manifest}:")]
    assert len(located) == 3
    assert all("no role grants it" in line for line in located)
    assert err[-1].startswith("interlock: error[manifest_invalid]: ")
    assert "nothing was written" in err[-1]
    assert manifest.read_text() == MANIFEST
    assert manifest.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interlock.yaml", "spec.yaml"]


def test_missing_spec_is_one_line(
    tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spec that does not exist is an error line, not a traceback."""
    assert main(["import-openapi", str(tmp_path / "nope.yaml"), "--system", "shop"]) == 1
    assert "nope.yaml:1:1: cannot read file" in _one_error_line(capsys, "openapi_invalid")
