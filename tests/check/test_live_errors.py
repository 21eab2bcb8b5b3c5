"""``--live`` sanitised-errors probe against servers that answer well and badly."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx

from interlock.check.live_errors import Probe, error_findings, inspect_answer, probes
from interlock.testing.tls import https_server
from tests.check.live_helpers import certificates, manifest_with

TIMEOUT = 5.0
_PATH_PROBE = Probe("path", "GET", "/x", None, "ilprobeabc", payload_in_path=True)
_BODY_PROBE = Probe("body", "POST", "/x", b"{", "ilprobeabc", payload_in_path=False)
_PROBLEM = {"Content-Type": "application/problem+json", "Server": "interlock"}


def _problem(status: int = 404, **extra: object) -> bytes:
    document = {
        "type": "urn:interlock:problem:not-found",
        "title": "Not found",
        "status": status,
        "detail": "no route matches",
        "instance": "/x/ilprobeabc'/../../etc/passwd",
        "correlation_id": "6f1c",
        **extra,
    }
    return json.dumps(document).encode()


def test_a_sanitised_problem_document_has_no_complaint() -> None:
    """Type, title, status, correlation id; the path only in ``instance``."""
    assert inspect_answer(_PATH_PROBE, 404, httpx.Headers(_PROBLEM), _problem()) == []


def test_a_payload_echoed_outside_instance_is_caught() -> None:
    """The probe's marker in ``detail`` is an echo, even though ``instance`` may hold it."""
    body = _problem(detail="no route for ilprobeabc")
    assert "the answer echoes the probe's payload" in inspect_answer(
        _PATH_PROBE, 404, httpx.Headers(_PROBLEM), body
    )


def test_a_body_payload_may_not_come_back_anywhere() -> None:
    """A payload sent in the body may not appear even in ``instance``."""
    found = inspect_answer(_BODY_PROBE, 400, httpx.Headers(_PROBLEM), _problem(400))
    assert "the answer echoes the probe's payload" in found
    assert "the body contains a file path" in found


def test_missing_members_and_wrong_media_type_are_named() -> None:
    """Plain JSON without the RFC 9457 members is not a problem document."""
    body = json.dumps({"error": "nope"}).encode()
    found = inspect_answer(
        _PATH_PROBE, 400, httpx.Headers({"Content-Type": "application/json"}), body
    )
    assert "content type application/json, not application/problem+json" in found
    assert {"no type member", "no title member", "no correlation_id member"} <= set(found)
    assert "no status member equal to the HTTP status" in found


def test_leaks_and_banners_are_named() -> None:
    """A traceback, SQL, a driver's name and a product banner each count."""
    body = (
        b'Traceback (most recent call last):\n  File "/srv/app/db.py", line 12\n'
        b"sqlite3.OperationalError: near SELECT name FROM users"
    )
    headers = httpx.Headers(
        {
            "Content-Type": "text/plain",
            "Server": "Python/3.11 aiohttp/3.9",
            "X-Powered-By": "Express",
        }
    )
    found = inspect_answer(_PATH_PROBE, 500, headers, body)
    for expected in (
        "the body contains a stack trace",
        "the body contains a file path",
        "the body contains SQL or database driver text",
        "the body contains an exception name",
        "the Server header names software other than interlock",
        "an X-Powered-By header names the software",
        "the body is not a JSON object",
    ):
        assert expected in found


def test_a_success_answer_to_a_malformed_request_fails() -> None:
    """200 to garbage is not an error answer."""
    found = inspect_answer(_PATH_PROBE, 200, httpx.Headers(_PROBLEM), _problem(200))
    assert "answered 200, not an error" in found


def test_the_probes_cover_path_parameter_and_body_routes() -> None:
    """Unknown route, a route parameter, a malformed body; the marker in each payload."""
    manifest = manifest_with({"erp": {"url": "https://localhost:1"}})
    found = probes(manifest, "ilprobe123")
    assert [p.method for p in found] == ["GET", "GET", "POST"]
    assert found[1].path.startswith("/erp/orders/ilprobe123")
    assert found[2].path == "/erp/orders"
    assert found[2].body is not None
    assert b"ilprobe123" in found[2].body
    assert all("ilprobe123" in p.path or (p.body and b"ilprobe123" in p.body) for p in found)


class _Leaky(BaseHTTPRequestHandler):
    """What a framework in debug mode answers: the traceback, and its banner."""

    def _leak(self) -> None:
        body = (
            'Traceback (most recent call last):\n  File "/srv/app/views.py", line 42, in get\n'
            f"KeyError: {self.path!r}\n"
        ).encode()
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        """Leak."""
        self._leak()

    def do_POST(self) -> None:
        """Leak (the body is not read)."""
        self._leak()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


def test_a_server_that_leaks_a_traceback_fails_the_probe(tmp_path: Path) -> None:
    """The probe can fail: every leak of a debug-mode server is named in the reason."""
    tls = certificates(tmp_path)
    manifest = manifest_with({"erp": {"url": "https://localhost:1"}})
    with https_server(_Leaky, tls) as server:
        url = f"https://localhost:{server.server_address[1]}"
        finding = error_findings(url, manifest, tls.ca_file, TIMEOUT)
    assert finding.status == "fail"
    assert finding.live
    assert finding.integration is None
    assert "the body contains a stack trace" in finding.reason
    assert "the Server header names software other than interlock" in finding.reason
    assert "the answer echoes the probe's payload" in finding.reason
    assert len(finding.evidence) == 3


def test_an_unreachable_gateway_is_a_failed_finding(tmp_path: Path) -> None:
    """Nothing listening: a failed finding with the reason."""
    tls = certificates(tmp_path)
    manifest = manifest_with({"erp": {"url": "https://localhost:1"}})
    finding = error_findings("https://localhost:1", manifest, tls.ca_file, TIMEOUT)
    assert finding.status == "fail"
    assert "could not be probed" in finding.reason


def test_a_plain_http_gateway_url_is_refused_as_a_finding(tmp_path: Path) -> None:
    """The probe speaks HTTPS only; http:// is a failed finding naming why."""
    manifest = manifest_with({"erp": {"url": "https://localhost:1"}})
    finding = error_findings("http://127.0.0.1:1", manifest, None, TIMEOUT)
    assert finding.status == "fail"
    assert "https:// only" in finding.reason
    malformed = error_findings("https://[::1", manifest, None, TIMEOUT)
    assert malformed.status == "fail"
