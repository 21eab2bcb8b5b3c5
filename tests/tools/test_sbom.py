"""`make sbom`: a CycloneDX 1.5 SBOM of the locked server set, valid against the schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.conftest import REPO_ROOT

LOCKED = re.compile(r'^name = "([^"]+)"\nversion = "([^"]+)"', re.MULTILINE)


@pytest.fixture(scope="module")
def sbom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The SBOM the make target writes, parsed (after schema validation)."""
    make = shutil.which("make")
    if make is None or not (REPO_ROOT / ".venv-tools" / "bin" / "uv").exists():
        pytest.skip("make and .venv-tools/bin/uv are needed (make install creates the latter)")
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
    text = out.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    parsed: dict[str, object] = json.loads(text)
    return parsed


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
