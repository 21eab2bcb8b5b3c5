"""The manifest's JSON Schema and docs/manifest.md: generated, published, and in step with the models.

The schema is checked with jsonschema-rs, the validator the gateway uses for
request bodies, against manifests read with the project's own YAML reader.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from interlock.cli.main import main
from interlock.cli.manifest import schema_text
from interlock.config.loader import check_manifest
from interlock.config.yaml_source import read_yaml
from tools import manifest_reference
from tools.manifest_reference import DOC, EXAMPLE, FIX, SCHEMA, build_schema, outputs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """The schema as shipped in the package."""
    document: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A 2020-12 validator of the shipped schema."""
    return jsonschema_rs.validator_for(schema)


def _locked_pydantic() -> str:
    """The pydantic version uv.lock pins: the one the committed files are generated with."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    return str(next(p["version"] for p in lock["package"] if p["name"] == "pydantic"))


def test_the_committed_schema_and_reference_are_what_the_models_generate() -> None:
    """The drift check of `make test`, here too so that `make fast` catches it.

    Only under the locked pydantic: another release words the same schema differently
    (2.8 writes ``enum: [1]`` where 2.12 writes ``const: 1``); the lowest set still
    checks the committed schema against the example and the models (the tests below).
    """
    installed = importlib.metadata.version("pydantic")
    if installed != _locked_pydantic():
        pytest.skip(f"generated with pydantic {_locked_pydantic()} (uv.lock); {installed} here")
    for path, text in outputs().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.relative_to(ROOT)}: {FIX}"


def test_the_drift_check_fails_naming_the_make_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "manifest.md"
    stale.write_text("# an old reference\n")
    monkeypatch.setattr(manifest_reference, "ROOT", tmp_path)
    monkeypatch.setattr(
        manifest_reference,
        "outputs",
        lambda: {stale: "# the reference\n", tmp_path / "same.json": "{}\n"},
    )
    (tmp_path / "same.json").write_text("{}\n")
    assert manifest_reference.main(["--check"]) == 1
    assert stale.read_text() == "# an old reference\n"  # --check writes nothing
    err = capsys.readouterr().err
    assert "manifest.md differs from the manifest's models" in err
    assert "make manifest-docs" in err
    assert "same.json" not in err
    assert manifest_reference.main([]) == 0
    assert stale.read_text() == "# the reference\n"


def test_the_schema_is_2020_12_with_an_id_and_a_description_on_every_field(
    schema: dict[str, Any],
) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == manifest_reference.SCHEMA_ID
    assert schema["title"]
    assert schema["additionalProperties"] is False
    models = {"Manifest": schema, **schema["$defs"]}
    undocumented = [
        f"{name}.{field}"
        for name, model in models.items()
        for field, prop in model.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []


def test_the_example_manifest_is_valid_against_the_schema(
    validator: jsonschema_rs.Validator,
) -> None:
    data = read_yaml(EXAMPLE).data
    assert [error.message for error in validator.iter_errors(data)] == []


def test_the_example_names_the_schema_on_its_first_line() -> None:
    """The YAML language server's modeline, pointing at the file the package ships."""
    first = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match is not None
    assert (EXAMPLE.parent / match.group(1)).resolve() == SCHEMA.resolve()


def _manifests_in_tests() -> list[tuple[str, str]]:
    """Every literal manifest in the test suite and the testing package, by where it is."""
    sources = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "src/interlock/testing").rglob("*.py")]
    return [
        (f"{source.relative_to(ROOT)}:{node.lineno}", node.value)
        for source in sorted(sources)
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and "version: 1\n" in node.value
    ]


def test_every_manifest_the_loader_accepts_in_the_tests_is_valid_against_the_schema(
    validator: jsonschema_rs.Validator, tmp_path: Path
) -> None:
    """The schema never flags a manifest Interlock accepts (editors show no false errors)."""
    accepted = 0
    for where, text in _manifests_in_tests():
        path = tmp_path / "interlock.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        if check_manifest(path).errors:
            continue  # a test of a refusal
        accepted += 1
        errors = [
            f"{e.instance_path}: {e.message}" for e in validator.iter_errors(read_yaml(path).data)
        ]
        assert errors == [], where
    assert accepted >= 20


VALID_SYSTEM = """\
version: 1
systems:
  erp:
    url: https://erp.example
    location: DE
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("url: https://erp.example", "url: http://erp.example"),
        ("location: DE", "location: DE\n    credentials: hunter2-inline"),
        ("location: DE", "location: DE\n    ca: none"),
        ("location: DE", "location: DE\n    colour: blue"),
        ("location: DE", "location: Germany"),
        ("  erp:", "  ERP:"),
        ("version: 1", "version: 2"),
        ("version: 1", "version: 1\ntls:\n  min_version: '1.1'"),
        (
            "location: DE",
            "location: DE\nroles:\n  reader:\n    scopes: [Orders.Read]",
        ),
        (
            "location: DE",
            "location: DE\n"
            "integrations:\n  feed:\n    source: erp\n    target: erp\n    client: erp\n"
            "    purpose: test\n    legal_basis: contract\n    retention: 90",
        ),
        (
            "location: DE",
            "location: DE\n"
            "integrations:\n  feed:\n    source: erp\n    target: erp\n    client: erp\n"
            "    purpose: test\n    legal_basis: contract\n    retention: 90d\n"
            "    routes:\n      - method: GET\n        path: /x\n        upstream: erp\n"
            "        scope: x.read\n        rate_limit:\n          per_client: 10/fortnight",
        ),
    ],
)
def test_what_the_models_refuse_the_schema_refuses_too(
    validator: jsonschema_rs.Validator, tmp_path: Path, old: str, new: str
) -> None:
    path = tmp_path / "interlock.yaml"
    path.write_text(VALID_SYSTEM, encoding="utf-8")
    assert validator.is_valid(read_yaml(path).data)
    assert not check_manifest(path).errors
    path.write_text(VALID_SYSTEM.replace(old, new, 1), encoding="utf-8")
    assert check_manifest(path).errors
    assert not validator.is_valid(read_yaml(path).data)


def test_every_example_in_the_schema_is_valid_where_it_stands(schema: dict[str, Any]) -> None:
    checked = 0

    def walk(node: object, where: str) -> None:
        nonlocal checked
        if isinstance(node, dict):
            if isinstance(node.get("examples"), list) and where.count("/properties/") <= 2:
                local = {k: v for k, v in node.items() if k != "examples"}
                check = jsonschema_rs.validator_for({**local, "$defs": schema["$defs"]})
                for example in node["examples"]:
                    assert check.is_valid(example), (where, example)
                    checked += 1
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(schema, "")
    assert checked > 100


def test_the_reference_documents_every_field_of_every_section() -> None:
    text = DOC.read_text(encoding="utf-8")
    schema = build_schema()
    for name, model in schema["$defs"].items():
        assert f"({name})" in text
        for field in model.get("properties", {}):
            assert f"| `{field}` |" in text
    for section in schema["properties"]:
        assert f"| `{section}` |" in text
    # The docs command test runs sh blocks: the one here is the schema command itself.
    blocks = text.split("```sh\n")[1:]
    assert [block.split("```", 1)[0].strip().split("#", 1)[0].strip() for block in blocks] == [
        "interlock manifest schema -o interlock.schema.json"
    ]


def test_manifest_schema_prints_the_packaged_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "schema"]) == 0
    out = capsys.readouterr().out
    assert out == SCHEMA.read_text(encoding="utf-8") == schema_text()
    assert json.loads(out)["$id"] == manifest_reference.SCHEMA_ID


def test_manifest_schema_writes_a_file_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "interlock.schema.json"
    target.write_text("old")
    assert main(["manifest", "schema", "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == schema_text()
    assert capsys.readouterr().out == ""
    assert [p.name for p in tmp_path.iterdir()] == ["interlock.schema.json"]


def test_manifest_schema_into_a_missing_directory_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["manifest", "schema", "-o", str(tmp_path / "nowhere" / "s.json")]) == 1
    assert "is not a directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
