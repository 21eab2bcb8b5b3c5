"""The listener's TLS posture, scanned by sslyze against Mozilla's "intermediate" profile.

sslyze runs as a subprocess from its own venv (``make tools`` creates
``.venv-sslyze``; ``INTERLOCK_SSLYZE`` may name another executable): it pins
``cryptography<47`` and needs ``nassl``, so it cannot share the project's venv.
Without it the tests skip, or fail under ``INTERLOCK_REQUIRE_SERVICES=1`` (CI).

One scan of the shared gateway (``--mozilla_config=intermediate --resum``, JSON
out) feeds every test here. The scan is given the deployment's CA with
``--certinfo_ca_file``: the listener's certificate is issued by that private CA,
which is what the gateway's clients trust and which no public store (Mozilla's
included) holds; with it sslyze validates the chain, so the profile's
certificate checks (key type and curve, signature, lifetime, path) apply in
full and nothing of the profile is exempted.

The profile values below are Mozilla's server-side TLS guidelines v5.7
(https://ssl-config.mozilla.org/guidelines/5.7.json), written out here rather
than taken from ``interlock.gateway.tls`` so the gateway is checked against the
profile, not against itself. TLS 1.3 resumption is checked with the standard
library's client, since sslyze's ``--resum`` covers TLS 1.2 only.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from interlock.testing.gateway import Env
from interlock.testing.services import REQUIRE_SERVICES_ENV, require_env
from tests.conftest import REPO_ROOT

SSLYZE_ENV: Final = "INTERLOCK_SSLYZE"
DEFAULT_SSLYZE: Final = REPO_ROOT / ".venv-sslyze" / "bin" / "sslyze"
SCAN_TIMEOUT: Final = 60

# Mozilla intermediate v5.7: protocol versions, TLS 1.2 suites (IANA names, as
# sslyze reports them), TLS 1.3 suites, key-exchange groups (SECG names), and
# the smallest ephemeral key sizes.
INTERMEDIATE_VERSIONS: Final = frozenset({"TLS_1_2", "TLS_1_3"})
REFUSED_VERSIONS: Final = ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1")
INTERMEDIATE_TLS12_SUITES: Final = frozenset(
    {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    }
)
INTERMEDIATE_TLS13_SUITES: Final = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)
INTERMEDIATE_CURVES: Final = frozenset({"X25519", "secp256r1", "secp384r1"})
MIN_ECDH_BITS: Final = 256
MIN_DH_BITS: Final = 2048

_ISSUE = re.compile(r"^\s+\* (\w+): (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Scan:
    """One sslyze scan: its JSON scan result and the compliance verdict it printed."""

    result: dict[str, Any]  # ``server_scan_results[0].scan_result``
    compliant: bool
    issues: dict[str, str]  # criterion -> sslyze's description, when not compliant

    def command(self, name: str) -> dict[str, Any]:
        """The result of one scan command (e.g. ``tls_1_2_cipher_suites``); fails if it did not run."""
        attempt = self.result[name]
        assert attempt["status"] == "COMPLETED", f"sslyze {name}: {attempt.get('error_reason')}"
        found: dict[str, Any] = attempt["result"]
        return found

    def accepted(self, version: str) -> list[dict[str, Any]]:
        """The cipher suites the server accepted for ``version`` (``tls_1_2``, ...)."""
        found: list[dict[str, Any]] = self.command(f"{version}_cipher_suites")[
            "accepted_cipher_suites"
        ]
        return found


def _sslyze() -> Path:
    """The sslyze executable; skip (or fail under CI) when it is not installed."""
    path = Path(os.environ.get(SSLYZE_ENV) or DEFAULT_SSLYZE)
    if not os.access(path, os.X_OK):
        reason = (
            f"sslyze not found at {path}: run `make tools` (creates .venv-sslyze) "
            f"or set {SSLYZE_ENV}"
        )
        if require_env():
            pytest.fail(f"{reason} ({REQUIRE_SERVICES_ENV}=1)")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def scan(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """Scan the shared gateway once with the Mozilla intermediate checks and resumption."""
    sslyze = _sslyze()
    out = tmp_path_factory.mktemp("sslyze") / "scan.json"
    completed = subprocess.run(  # noqa: S603  (fixed arguments, no shell)
        [
            str(sslyze),
            "--mozilla_config=intermediate",
            "--resum",
            f"--certinfo_ca_file={env.ca_file}",
            f"--json_out={out}",
            f"127.0.0.1:{env.port}",
        ],
        capture_output=True,
        text=True,
        timeout=SCAN_TIMEOUT,
        check=False,
        # The scanner probes with its own defaults, not an OpenSSL configuration meant for us.
        env={k: v for k, v in os.environ.items() if k != "OPENSSL_CONF"},
    )
    if not out.exists():
        pytest.fail(f"sslyze wrote no JSON (exit {completed.returncode}): {completed.stderr}")
    server = json.loads(out.read_text())["server_scan_results"][0]
    assert server["connectivity_status"] == "COMPLETED", server["connectivity_error_trace"]
    assert server["scan_status"] == "COMPLETED"
    verdict = completed.stdout.partition("COMPLIANCE AGAINST TLS CONFIGURATION")[2]
    compliant = completed.returncode == 0 and "OK - Compliant." in verdict
    issues = dict(_ISSUE.findall(verdict))
    if not compliant and not issues:
        pytest.fail(
            f"sslyze gave no verdict (exit {completed.returncode}):\n{verdict or completed}"
        )
    return Scan(server["scan_result"], compliant, issues)


def test_listener_is_compliant_with_mozilla_intermediate(scan: Scan) -> None:
    """sslyze's own check against the intermediate profile finds nothing to fix.

    Covers versions, suites, curves, ephemeral key sizes, the certificate
    (type, curve, signature, lifetime, chain to the deployment CA) and the
    known attacks (compression, Heartbleed, CCS injection, ROBOT, downgrade
    without TLS_FALLBACK_SCSV, insecure renegotiation, no extended master secret).
    """
    assert scan.compliant, f"not compliant with Mozilla intermediate: {scan.issues}"


@pytest.mark.parametrize("version", REFUSED_VERSIONS)
def test_ssl_and_tls_below_12_are_refused(scan: Scan, version: str) -> None:
    """SSL 2.0, SSL 3.0, TLS 1.0 and TLS 1.1 accept no cipher suite at all."""
    assert not scan.command(f"{version}_cipher_suites")["is_tls_version_supported"]
    assert scan.accepted(version) == []


@pytest.mark.parametrize("version", ["tls_1_2", "tls_1_3"])
def test_tls_12_and_13_are_accepted(scan: Scan, version: str) -> None:
    """Both versions of the profile complete handshakes."""
    assert scan.command(f"{version}_cipher_suites")["is_tls_version_supported"]
    assert scan.accepted(version)


def test_no_suite_outside_the_intermediate_list_is_accepted(scan: Scan) -> None:
    """Every accepted TLS 1.2 and 1.3 suite is on the profile's list: no CBC, RSA kx, or SHA-1."""
    tls12 = {suite["cipher_suite"]["name"] for suite in scan.accepted("tls_1_2")}
    tls13 = {suite["cipher_suite"]["name"] for suite in scan.accepted("tls_1_3")}
    assert tls12 <= INTERMEDIATE_TLS12_SUITES, tls12 - INTERMEDIATE_TLS12_SUITES
    assert tls13 <= INTERMEDIATE_TLS13_SUITES, tls13 - INTERMEDIATE_TLS13_SUITES


def test_ephemeral_keys_are_at_least_the_profile_sizes(scan: Scan) -> None:
    """ECDHE keys of 256 bits or more (X25519 reports 253), finite-field DHE of 2048 or more."""
    for version in ("tls_1_2", "tls_1_3"):
        for suite in scan.accepted(version):
            key = suite["ephemeral_key"]
            if key is None:
                continue
            if key["type_name"] == "ECDH":
                # sslyze's own adjustment: OpenSSL reports X25519 as 253 bits.
                assert key["size"] + 3 >= MIN_ECDH_BITS, suite
            else:
                assert key["size"] >= MIN_DH_BITS, suite


def test_only_intermediate_curves_are_offered(scan: Scan) -> None:
    """Key exchange uses X25519, P-256 or P-384 only; every other group is refused."""
    curves = scan.command("elliptic_curves")
    supported = {curve["name"] for curve in curves["supported_curves"] or []}
    assert supported, "no ECDHE group accepted"
    assert supported <= INTERMEDIATE_CURVES, (
        f"groups outside the profile: {supported - INTERMEDIATE_CURVES}"
    )


def test_tls_12_sessions_resume(scan: Scan) -> None:
    """A TLS 1.2 client resumes every time, by session ticket or by session id."""
    resumption = scan.command("session_resumption")
    assert "FULLY_SUPPORTED" in {
        resumption["tls_ticket_resumption_result"],
        resumption["session_id_resumption_result"],
    }, resumption


def test_tls_13_sessions_resume(env: Env) -> None:
    """A TLS 1.3 client that kept the server's ticket resumes without a full handshake."""
    context = env.context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    first = _healthz(env, context, None)
    assert not first.session_reused
    assert first.session is not None
    assert first.session.has_ticket
    second = _healthz(env, context, first.session)
    assert second.session_reused


@dataclass(frozen=True)
class _Visit:
    session: ssl.SSLSession | None
    session_reused: bool


def _healthz(env: Env, context: ssl.SSLContext, session: ssl.SSLSession | None) -> _Visit:
    """GET /healthz on a fresh connection, read to the end (TLS 1.3 tickets follow the handshake)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", env.port), timeout=5) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1", session=session) as tls,
    ):
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        return _Visit(tls.session, bool(tls.session_reused))
