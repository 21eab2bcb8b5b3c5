"""The client SDK installed alone: only the base dependencies, a real round trip.

A fresh venv gets exactly what ``pip install interlock`` would bring, from the
lock (``uv export --no-dev``: no extras, no groups) plus Interlock's own
source; no SQLAlchemy, aiohttp, pydantic, psycopg, python-pkcs11 or Alembic.
From it, the SDK gets a DPoP-bound token from the gateway this test started and
calls a route with httpx and with requests; the offline audit verifier and
``python -m interlock --version`` work too, and the server command says which
extra it needs instead of failing with a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.audit.evidence import evidence_for
from interlock.audit.service import AuditLog
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.privacy.receipts import build_receipt
from interlock.testing.gateway import Env
from interlock.testing.services import require_env
from tests.conftest import REPO_ROOT
from tests.privacy.test_receipts import close_request, record_steps

# uv builds an SDK-only venv; the gateway runs its upstreams as processes.
pytestmark = pytest.mark.processes

#: Distributions of the server's extras: none may be in an SDK-only install.
SERVER_DISTRIBUTIONS = frozenset(
    {
        "aiohttp",
        "alembic",
        "psycopg",
        "psycopg-binary",
        "pydantic",
        "pydantic-core",
        "python-pkcs11",
        "redis",
        "sqlalchemy",
        "structlog",
        "typer",
        "uvloop",
    }
)

ROUND_TRIP = """
import json, os, ssl, sys
import httpx, requests
from interlock.sdk import ClientCredentials, InterlockAuth, InterlockRequestsAuth
from interlock.sdk.audit import NoteVerifier, verify_export

base, ca = os.environ["GATEWAY"], os.environ["GATEWAY_CA"]
def credentials():
    return ClientCredentials(
        base + "/oauth2/token", "oauth-only", client_secret=os.environ["CLIENT_SECRET"],
        scope="orders.read", verify=ca, dpop=True,
    )
context = ssl.create_default_context(cafile=ca)
with httpx.Client(auth=InterlockAuth(credentials()), verify=context) as client:
    first = client.get(base + "/orders/1001")
with requests.Session() as session:
    session.trust_env = False
    second = session.get(
        base + "/orders/1001", auth=InterlockRequestsAuth(credentials()), verify=ca, timeout=10
    )
print(json.dumps({
    "httpx": [first.status_code, first.json().get("id"), first.request.headers["Authorization"].split()[0]],
    "requests": [second.status_code, second.json().get("id")],
    "loaded": sorted({name.partition(".")[0] for name in sys.modules}),
    "interlock": sorted(name for name in sys.modules if name.startswith("interlock")),
}))
"""


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    bootstrap = REPO_ROOT / ".venv-tools" / "bin" / "uv"
    if found is None and bootstrap.exists():
        found = str(bootstrap)
    if found is None:
        reason = "uv not found (make install bootstraps it into .venv-tools)"
        if require_env():
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _run(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed arguments
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never", **(env or {})},
    )


@pytest.fixture(scope="module")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a venv holding only the SDK's locked dependencies and our source."""
    uv = _uv()
    work = tmp_path_factory.mktemp("sdk-only")
    requirements = work / "sdk.txt"
    venv = work / "venv"
    steps = [
        (
            uv,
            "export",
            "--quiet",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--format",
            "requirements.txt",
            "-o",
            requirements,
        ),
        (uv, "venv", "--quiet", "--python", sys.executable, venv),
        (
            uv,
            "pip",
            "sync",
            "--quiet",
            "--python",
            venv / "bin" / "python",
            "--require-hashes",
            requirements,
        ),
    ]
    for step in steps:
        done = _run(*step, cwd=REPO_ROOT)
        assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    # Our source as an installed wheel would bring it, without building one.
    Path(site.stdout.strip(), "interlock-src.pth").write_text(f"{REPO_ROOT / 'src'}\n")
    return python


def test_the_sdk_venv_holds_none_of_the_server_dependencies(sdk_python: Path) -> None:
    """The locked base set installs no server package (and does install the SDK's own)."""
    listed = _run(
        sdk_python,
        "-c",
        "import importlib.metadata as m, json;"
        "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))",
    )
    installed = set(json.loads(listed.stdout))
    assert installed & SERVER_DISTRIBUTIONS == set()
    assert {"authlib", "cryptography", "httpx", "joserfc", "requests"} <= installed


def test_an_sdk_round_trip_through_the_gateway(
    sdk_python: Path, gateway: Env, client_secret: str
) -> None:
    """Token (DPoP-bound) and a route call with httpx and requests; no server module loaded."""
    done = _run(
        sdk_python,
        "-c",
        ROUND_TRIP,
        env={
            "GATEWAY": f"https://127.0.0.1:{gateway.port}",
            "GATEWAY_CA": str(gateway.ca_file),
            "CLIENT_SECRET": client_secret,
        },
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["httpx"] == [200, "1001", "DPoP"]
    assert result["requests"] == [200, "1001"]
    assert set(result["loaded"]) & {"sqlalchemy", "aiohttp", "pydantic", "structlog"} == set()
    assert not any(
        name.startswith(("interlock.gateway", "interlock.store", "interlock.oauth"))
        for name in result["interlock"]
    )


def test_the_command_line_in_an_sdk_only_install(sdk_python: Path) -> None:
    """``--version`` works; a server command names the missing extra in one line."""
    version = _run(sdk_python, "-m", "interlock", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("interlock ")
    serve = _run(sdk_python, "-m", "interlock", "serve")
    assert serve.returncode == 1
    assert serve.stdout == ""
    assert serve.stderr.strip().startswith("interlock: error[missing_extra]: ")
    assert "pip install 'interlock[server]'" in serve.stderr
    assert len(serve.stderr.strip().splitlines()) == 1


RECEIPT = """
import json, sys
from interlock.sdk.audit import NoteVerifier
from interlock.sdk.receipts import ProofError, verify_receipt

receipt, key = open(sys.argv[1], "rb").read(), NoteVerifier.parse(open(sys.argv[2]).read())
summary = verify_receipt(receipt, [key])
try:
    verify_receipt(receipt.replace(b'"done"', b'"failed"', 1), [key])
    refused = None
except ProofError as exc:
    refused = str(exc)
print(json.dumps({
    "summary": [summary.request_id, summary.outcome, summary.systems, summary.checkpoint.size],
    "refused": refused,
    "loaded": sorted({name.partition(".")[0] for name in sys.modules}),
}))
"""


def test_a_receipt_verifies_in_an_sdk_only_install(sdk_python: Path, tmp_path: Path) -> None:
    """A data-subject request's receipt from a real log verifies with only the SDK and the key."""
    settings = Settings(
        data_dir=tmp_path / "data", audit_database_url=f"sqlite:///{tmp_path / 'a.db'}"
    )
    log = AuditLog.open(settings, Keyring.create(tmp_path / "keyring.json"), witnesses=[])
    try:
        statement, _ = record_steps(log)
        closed = close_request(log, statement)
        evidence = evidence_for(log.store.engine, statement.indexes() | {closed})
        receipt = build_receipt(statement, evidence, closed)
        vkey = log.keys.verifier.vkey
    finally:
        log.close()
    (tmp_path / "receipt.json").write_text(json.dumps(receipt))
    (tmp_path / "audit.vkey").write_text(vkey)
    done = _run(sdk_python, "-c", RECEIPT, tmp_path / "receipt.json", tmp_path / "audit.vkey")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["summary"] == [
        statement.request_id,
        "completed",
        {"crm": "not_found", "erp": "done"},
        closed + 1,
    ]
    assert result["refused"] == "the statement does not match the receipt's statement_digest"
    assert set(result["loaded"]) & {"sqlalchemy", "aiohttp", "pydantic", "structlog"} == set()
