"""The dependency audit gate: known vulnerabilities fail the build unless waived, with dates.

pip-audit runs for real against an OSV-compatible service this test serves over
TLS (its own CA, trusted through ``REQUESTS_CA_BUNDLE``), so every verdict below
is the one `make test` would reach for the same advisories.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from interlock.testing.tls import LocalTls, https_server, make_tls
from tools.audit_dependencies import WaiverFileError, load_waivers

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "audit_dependencies.py"
TODAY = datetime.now(UTC).date()
HASH = "sha256:" + "ab" * 32
REQUIREMENTS = f"idna==3.20 \\\n    --hash={HASH}\nsix==1.16.0 \\\n    --hash={HASH}\n"

ADVISORY: dict[str, Any] = {
    "id": "GHSA-test-0000-0001",
    "aliases": ["CVE-2099-0001"],
    "summary": "a planted advisory",
    "affected": [
        {
            "package": {"name": "idna", "ecosystem": "PyPI"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9"}]}],
        }
    ],
}


class Osv:
    """An OSV ``/v1/query`` endpoint over TLS that knows one advisory for idna."""

    def __init__(self) -> None:
        self.queries: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler bound to this service."""
        osv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with osv.lock:
                    osv.queries.append(query)
                vulns = [ADVISORY] if query["package"]["name"] == "idna" else []
                body = json.dumps({"vulns": vulns} if vulns else {}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        return Handler


@pytest.fixture
def tls(tmp_path: Path) -> LocalTls:
    """A CA made now and the service's certificate."""
    return make_tls(tmp_path / "tls", "OSV test CA")


@pytest.fixture
def osv(tls: LocalTls) -> Iterator[tuple[Osv, str]]:
    """The service and its query URL."""
    service = Osv()
    with https_server(service.handler(), tls) as server:
        yield service, f"https://localhost:{server.server_address[1]}/v1/query"


def _waivers(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waivers.toml"
    path.write_text(text)
    return path


def _waiver(advisory: str, recorded: object, expires: object, package: str = "idna") -> str:
    return (
        f'[[waiver]]\nid = "{advisory}"\npackage = "{package}"\n'
        f'reason = "only the test corpus uses this package, never the product"\n'
        f"recorded = {recorded}\nexpires = {expires}\n"
    )


def _audit(
    tmp_path: Path, url: str, ca_file: Path, waivers: str = ""
) -> subprocess.CompletedProcess[str]:
    requirements = tmp_path / "locked.txt"
    requirements.write_text(REQUIREMENTS)
    env = {
        **os.environ,
        "REQUESTS_CA_BUNDLE": str(ca_file),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [
            sys.executable,
            str(SCRIPT),
            str(requirements),
            "--waivers",
            str(_waivers(tmp_path, waivers)),
            "--osv-url",
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


@pytest.mark.processes
def test_a_known_vulnerability_fails_the_build(
    tmp_path: Path, osv: tuple[Osv, str], tls: LocalTls
) -> None:
    """idna 3.20 has an advisory and no waiver: exit 1, the package and advisory named."""
    service, url = osv
    done = _audit(tmp_path, url, tls.ca_file)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "VULNERABLE" in done.stdout
    assert "idna 3.20: " in done.stdout
    assert "GHSA-test-0000-0001" in done.stdout
    assert "CVE-2099-0001" in done.stdout
    assert "fixed in: 9.9); no waiver" in done.stdout
    assert {q["package"]["name"] for q in service.queries} >= {"idna", "six"}


@pytest.mark.processes
def test_a_dated_waiver_lets_it_pass_and_is_reported(
    tmp_path: Path, osv: tuple[Osv, str], tls: LocalTls
) -> None:
    """A waiver naming the advisory by an alias, still in force: exit 0, reason printed."""
    _, url = osv
    waiver = _waiver("CVE-2099-0001", TODAY - timedelta(days=1), TODAY + timedelta(days=30))
    done = _audit(tmp_path, url, tls.ca_file, waiver)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "waived" in done.stdout
    assert "never the product" in done.stdout


@pytest.mark.processes
def test_an_expired_waiver_fails_the_build(
    tmp_path: Path, osv: tuple[Osv, str], tls: LocalTls
) -> None:
    """A waiver past its date counts as none."""
    _, url = osv
    waiver = _waiver("GHSA-test-0000-0001", TODAY - timedelta(days=40), TODAY - timedelta(days=1))
    done = _audit(tmp_path, url, tls.ca_file, waiver)
    assert done.returncode == 1
    assert f"its waiver expired on {TODAY - timedelta(days=1)}" in done.stdout


@pytest.mark.processes
def test_a_waiver_for_another_package_does_not_apply(
    tmp_path: Path, osv: tuple[Osv, str], tls: LocalTls
) -> None:
    """The advisory id alone is not enough: the waiver must name the package too."""
    _, url = osv
    waiver = _waiver("GHSA-test-0000-0001", TODAY, TODAY + timedelta(days=5), package="six")
    done = _audit(tmp_path, url, tls.ca_file, waiver)
    assert done.returncode == 1
    assert "unused waiver GHSA-test-0000-0001 (six)" in done.stdout


@pytest.mark.processes
def test_an_unreachable_service_is_reported_without_failing(tmp_path: Path, tls: LocalTls) -> None:
    """Nothing listens: one line says nothing was checked; exit 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = _audit(tmp_path, f"https://localhost:{port}/v1/query", tls.ca_file)
    assert done.returncode == 0
    assert "cannot be reached" in done.stdout
    assert "NOT checked" in done.stdout


@pytest.mark.processes
def test_a_service_whose_certificate_does_not_verify_fails(
    tmp_path: Path, osv: tuple[Osv, str]
) -> None:
    """A certificate from a CA we do not trust is not an outage: exit 1."""
    _, url = osv
    stranger = make_tls(tmp_path / "stranger", "Not the service's CA")
    done = _audit(tmp_path, url, stranger.ca_file)
    assert done.returncode == 1
    assert "TLS to the vulnerability service" in done.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[waiver]]\nid = "X"\npackage = "idna"\n', "waiver[0].reason: missing"),
        (
            _waiver("X", "2026-12-01", "2026-12-02").replace(
                "recorded = 2026-12-01", 'recorded = "2026-12-01"'
            ),
            "waiver[0].recorded: missing (a TOML date",
        ),
        (_waiver("X", "2026-12-01", "2026-11-30"), "waiver[0].expires: must be after recorded"),
        (_waiver("X", "2026-01-01", "2026-12-01"), "waiver[0].expires: at most 90 days"),
        (
            _waiver("X", "2026-12-01", "2026-12-02")
            .replace("never the product", "")
            .replace("only the test corpus uses this package, ", "fine"),
            "waiver[0].reason: say why",
        ),
        (
            "# a comment\n\n" + _waiver("X", "2026-12-01", "2026-12-02") + "owner = 'me'\n",
            "waiver[0].owner: unknown field",
        ),
    ],
)
def test_a_malformed_waiver_is_refused_with_its_line_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    """Each problem names the file, the line of its [[waiver]] and the field."""
    path = _waivers(tmp_path, text)
    with pytest.raises(WaiverFileError) as raised:
        load_waivers(path)
    line = 3 if text.startswith("# a comment") else 1
    assert str(raised.value).startswith(f"{path}:{line}: ")
    assert message in str(raised.value)


def test_the_repository_waivers_are_well_formed() -> None:
    """requirements/waivers.toml loads: every waiver has a reason and at most 90 days."""
    waivers = load_waivers(REPO / "requirements" / "waivers.toml")
    assert all(w.expires - w.recorded <= timedelta(days=90) for w in waivers)
