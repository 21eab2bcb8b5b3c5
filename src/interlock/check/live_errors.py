"""``--live``: malformed requests to the running gateway (item ``sanitised_errors``).

Three requests a careless server answers with internals, each marked with a
random token so an echo can be recognised:

* an unknown route whose path carries an injection string (quote, SQL,
  markup, a traversal);
* a known route (the first with a path parameter) with the injection string
  as the parameter;
* a syntactically broken JSON body, carrying the injection string, to a route
  that takes a body (skipped when the manifest has none).

Each answer must be an error (4xx/5xx) in RFC 9457 form —
``application/problem+json``, an object with ``type``, ``title`` and an
integer ``status`` equal to the HTTP status, and a ``correlation_id`` — and
must carry no stack trace, file path, SQL or driver text, no ``Server`` banner
other than ``interlock`` and no ``X-Powered-By``, and not echo the probe's
payload. One exception, stated: the problem's ``instance`` member may name the
request's path (RFC 9457 §3.1.5, the occurrence), so a payload in the *path*
may appear there and nowhere else; a payload in the *body* may appear nowhere.

The answers are read capped (:data:`MAX_ANSWER` bytes) through the one
outbound client (TLS verified against the gateway's CA, timeouts bounded).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx

from interlock.check.results import Finding
from interlock.config.manifest import Manifest, template_params
from interlock.errors import InterlockError
from interlock.outbound import Timeouts, outbound_client, read_capped

__all__ = ["MAX_ANSWER", "Probe", "error_findings", "inspect_answer", "probes"]

MAX_ANSWER: Final = 64 * 1024
_ITEM: Final = "sanitised_errors"
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})

# What internal detail looks like in an answer. SQL keywords in capitals only: the
# English in a problem's detail may well say "select" or "update".
_TRACE: Final = (
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|"
    r"\bat [\w.$]+\(\w+\.java:\d+\)|(?i:\bstack ?trace\b)"
)
_PATH: Final = r"/(?:usr|home|srv|opt|var|etc|app|src|tmp)/[\w.-]+|site-packages|\b[A-Z]:\\\w"
_SQL: Final = (
    r"\bSELECT\b.+\bFROM\b|\bINSERT INTO\b|\bUPDATE\b.+\bSET\b|SQLSTATE|ORA-\d{5}|"
    r"(?i:sqlite3?\.|psycopg|pymysql|sqlalchemy|syntax error at or near)"
)
_LEAKS: Final = (
    ("a stack trace", re.compile(_TRACE)),
    ("a file path", re.compile(_PATH)),
    ("SQL or database driver text", re.compile(_SQL)),
    ("an exception name", re.compile(r"\b\w+(?:Error|Exception)\b:")),
)
_BANNER: Final = re.compile(r"^interlock(?:/[\w.+-]+)?$", re.I)


@dataclass(frozen=True)
class Probe:
    """One malformed request: what it tries, and where its payload sits."""

    label: str
    method: str
    path: str  # already percent-encoded
    body: bytes | None
    marker: str  # the random token inside the payload
    payload_in_path: bool


def probes(manifest: Manifest, token: str | None = None) -> list[Probe]:
    """The malformed requests for ``manifest`` (``token``: the marker; default random)."""
    marker = token or f"ilprobe{secrets.token_hex(6)}"
    injection = f"{marker}' OR '1'='1\"--<script>../../etc/passwd"
    encoded = quote(injection, safe="")
    found = [
        Probe("unknown route with an injection string", "GET",
              f"/interlock-check-{marker}/{encoded}", None, marker, True),
    ]  # fmt: skip
    routes = [r for i in manifest.integrations.values() for r in i.routes]
    with_param = next((r for r in routes if template_params(r.path)), None)
    if with_param is not None:
        found.append(
            Probe("route parameter with an injection string", with_param.method,
                  _fill(with_param.path, encoded), None, marker, True)
        )  # fmt: skip
    with_body = next((r for r in routes if r.method in _BODY_METHODS), None)
    if with_body is not None:
        body = ('{"' + injection.replace('"', "'") + '": [1, 2,, }').encode()
        found.append(
            Probe("malformed JSON body", with_body.method, _fill(with_body.path, "1"), body,
                  marker, False)
        )  # fmt: skip
    return found


def _fill(template: str, value: str) -> str:
    path = template
    for name in template_params(template):
        path = path.replace("{" + name + "}", value)
    return path


def inspect_answer(probe: Probe, status: int, headers: httpx.Headers, raw: bytes) -> list[str]:
    """What is wrong with the answer to ``probe`` (empty: a sanitised problem document)."""
    problems: list[str] = []
    if status < 400:
        problems.append(f"answered {status}, not an error")
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/problem+json":
        problems.append(f"content type {media or 'none'}, not application/problem+json")
    document = _document(raw)
    if document is None:
        problems.append("the body is not a JSON object")
    else:
        problems.extend(_members(document, status))
    text = raw.decode("utf-8", "replace")
    if document is not None and probe.payload_in_path:
        # The path we sent may come back in ``instance`` (see the module's note).
        text = "\n".join(_strings({k: v for k, v in document.items() if k != "instance"}))
    for what, pattern in _LEAKS:
        if pattern.search(text):
            problems.append(f"the body contains {what}")
    server = headers.get("server")
    if server is not None and not _BANNER.match(server.strip()):
        problems.append("the Server header names software other than interlock")
    if "x-powered-by" in headers:
        problems.append("an X-Powered-By header names the software")
    if probe.marker in text or any(probe.marker in v for v in headers.values()):
        problems.append("the answer echoes the probe's payload")
    return problems


def _document(raw: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _strings(value: object) -> list[str]:
    """Every string (keys and values) in a JSON value, unescaped."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [str(value)]


def _members(document: dict[str, Any], status: int) -> list[str]:
    problems = [
        f"no {name} member"
        for name in ("type", "title")
        if not isinstance(document.get(name), str) or not document[name]
    ]
    if document.get("status") != status:
        problems.append("no status member equal to the HTTP status")
    if not isinstance(document.get("correlation_id"), str) or not document["correlation_id"]:
        problems.append("no correlation_id member")
    return problems


def error_findings(
    gateway_url: str, manifest: Manifest, trust: Path | None, timeout: float
) -> Finding:
    """Send :func:`probes` to ``gateway_url``: one ``sanitised_errors`` finding (the deployment)."""
    evidence: list[str] = []
    failures: list[str] = []
    try:
        with outbound_client(
            trust=trust, timeouts=Timeouts.every(timeout), base_url=gateway_url.rstrip("/")
        ) as client:
            for probe in probes(manifest):
                headers = {"Content-Type": "application/json"} if probe.body is not None else {}
                with client.stream(
                    probe.method, probe.path, content=probe.body, headers=headers
                ) as response:
                    raw = read_capped(response, MAX_ANSWER)
                    found = inspect_answer(probe, response.status_code, response.headers, raw)
                evidence.append(f"{probe.label}: {probe.method} -> {response.status_code}")
                failures.extend(f"{probe.label}: {problem}" for problem in found)
    except (httpx.HTTPError, httpx.InvalidURL, InterlockError, OSError) as exc:
        reason = f"the gateway at {gateway_url} could not be probed: {_reason(exc)}"
        return Finding(_ITEM, None, "fail", reason, tuple(evidence), fix=_FIX_REACH, live=True)
    if failures:
        return Finding(_ITEM, None, "fail", "; ".join(failures), tuple(evidence), fix=_FIX,
                       live=True)  # fmt: skip
    reason = f"{len(evidence)} malformed requests answered with sanitised problem documents"
    return Finding(_ITEM, None, "pass", reason, tuple(evidence), live=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, InterlockError):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_FIX: Final = (
    "answer every error as an RFC 9457 problem document without internal detail "
    "(put the service behind the Interlock gateway, which does)"
)
_FIX_REACH: Final = (
    "start the gateway (interlock serve) and pass its URL with --gateway and its CA with --ca"
)
