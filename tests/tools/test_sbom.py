"""`make sbom`: a CycloneDX 1.5 SBOM of the locked server set, valid against the schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from typing import Any

import jsonschema_rs
import pytest

from interlock.testing.services import require_env
from tests.conftest import REPO_ROOT

#: The official CycloneDX schemas, as the CycloneDX Python library ships them.
SCHEMAS = resources.files("cyclonedx.schema._res")
LOCKED = re.compile(r'^name = "([^"]+)"\nversion = "([^"]+)"', re.MULTILINE)


@pytest.fixture(scope="module")
def sbom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The SBOM the make target writes, parsed (after schema validation)."""
    make = shutil.which("make")
    if make is None or not (REPO_ROOT / ".venv-tools" / "bin" / "uv").exists():
        reason = "make and .venv-tools/bin/uv are needed (make install creates the latter)"
        if require_env():  # CI runs `make test`, which installs both
            pytest.fail(reason)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("sbom") / "bom.json"
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [make, "-s", "sbom", f"SBOM={out}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "experimental" not in done.stderr
    parsed: dict[str, object] = json.loads(out.read_text())
    _bom_1_5().validate(parsed)
    return parsed


def _bom_1_5() -> jsonschema_rs.Validator:
    """The CycloneDX 1.5 schema, its SPDX and JSF references resolved from the same files."""

    def retrieve(uri: str) -> Any:
        return json.loads(SCHEMAS.joinpath(uri.rsplit("/", 1)[-1]).read_text())

    schema = json.loads(SCHEMAS.joinpath("bom-1.5.SNAPSHOT.schema.json").read_text())
    return jsonschema_rs.validator_for(schema, retriever=retrieve, validate_formats=True)


def test_the_schema_check_refuses_a_malformed_sbom() -> None:
    """The validator is not vacuous: a wrong type and an unknown SPDX id both fail."""
    validator = _bom_1_5()
    base: dict[str, Any] = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1}
    assert validator.is_valid(base)
    assert not validator.is_valid({**base, "components": [{"type": "library", "name": 5}]})
    licensed = {"type": "library", "name": "x", "licenses": [{"license": {"id": "NOT-SPDX"}}]}
    assert not validator.is_valid({**base, "components": [licensed]})


@pytest.mark.processes
def test_the_sbom_names_every_runtime_package_at_its_locked_version(
    sbom: dict[str, object],
) -> None:
    """Server extras are in it at the versions of uv.lock; dev and bench tools are not."""
    components = sbom["components"]
    assert isinstance(components, list)
    listed = {c["name"]: c["version"] for c in components}
    locked = dict(LOCKED.findall((REPO_ROOT / "uv.lock").read_text()))
    for name in ("aiohttp", "cryptography", "psycopg-binary", "python-pkcs11", "sqlalchemy"):
        assert listed[name] == locked[name]
    assert {"pytest", "mypy", "ruff", "deptry", "bandit", "limits"} & set(listed) == set()


@pytest.mark.processes
def test_every_component_has_a_purl_and_a_sha256(sbom: dict[str, object]) -> None:
    """Each package is identified (purl) and pinned by content (SHA-256 of a distribution)."""
    components = sbom["components"]
    assert isinstance(components, list)
    assert len(components) > 40
    for component in components:
        assert component["purl"].startswith("pkg:pypi/")
        hashes = [h for ref in component["externalReferences"] for h in ref.get("hashes", [])]
        assert any(h["alg"] == "SHA-256" and len(h["content"]) == 64 for h in hashes)
    metadata = sbom["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["component"]["name"] == "interlock"
