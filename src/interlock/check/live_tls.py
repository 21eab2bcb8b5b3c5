"""``--live``: each upstream's TLS, probed (``tls_required``, ``certificates_validated``).

One handshake per system that a route forwards to, with the context the
gateway itself would use for it (the face hands in ``trust``: the manifest's
``ca`` — ``system``, ``file:PATH``, ``pki:NAME`` — as an SSLContext that
verifies the chain and the host name; there is no way to switch that off, so
a failed verification *is* the finding). Recorded: the negotiated version
(below 1.2 cannot be negotiated at all, since the context refuses it; 1.2 is
noted as "1.3 preferred", and fails where the system or manifest asks for
1.3), the verification result and the days until the leaf certificate
expires. Expired fails; fewer than :data:`EXPIRY_MARGIN` days left fails too
(an automated renewal normally runs with a month left, so two weeks left means
it is not happening). Connect and handshake are bounded by ``timeout``; an
unreachable system is a failed finding with the reason, never an exception.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from urllib.parse import urlsplit

from interlock.check.results import Finding, Status
from interlock.config.manifest import Manifest, System

__all__ = [
    "EXPIRY_MARGIN",
    "TlsOutcome",
    "Trust",
    "probe_system",
    "tls_findings",
    "upstream_systems",
]

#: Fewer days than this before a certificate expires is a failure.
EXPIRY_MARGIN: Final = timedelta(days=14)

#: A manifest trust anchor (``system``, ``file:PATH``, ``pki:NAME``) as a verifying context.
Trust = Callable[[str], ssl.SSLContext]

_FIX_TRUST: Final = (
    "give the system a certificate for its host name from the CA its `ca:` names, "
    "or name the CA that issued it (ca: pki:NAME or file:PATH)"
)


@dataclass(frozen=True)
class TlsOutcome:
    """What one handshake showed; ``error`` set: no verified session was made."""

    address: str  # host:port
    version: str | None = None  # "TLSv1.3"
    not_after: datetime | None = None
    error: str | None = None
    stage: Literal["trust", "connect", "handshake", "verify"] = "handshake"


def probe_system(system: System, trust: Trust, timeout: float) -> TlsOutcome:
    """Connect to ``system``'s host and port and complete a verifying TLS handshake."""
    parts = urlsplit(system.url)
    host, port = parts.hostname or "", parts.port or 443
    address = f"{host}:{port}"
    try:
        context = trust(system.ca)
    except Exception as exc:  # noqa: BLE001  (any failure to build the trust is the finding)
        return TlsOutcome(address, error=f"trust anchor {system.ca}: {exc}", stage="trust")
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return TlsOutcome(address, error=f"cannot connect: {_os_reason(exc)}", stage="connect")
    try:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            version = tls.version()
            certificate = tls.getpeercert()
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or exc.reason or "certificate not trusted"
        return TlsOutcome(address, error=f"certificate refused: {reason}", stage="verify")
    except ssl.SSLError as exc:
        return TlsOutcome(address, error=f"TLS handshake failed: {_ssl_reason(exc)}")
    except OSError as exc:  # reset, timeout during the handshake
        return TlsOutcome(address, error=f"TLS handshake failed: {_os_reason(exc)}")
    finally:
        raw.close()
    not_after = None
    if certificate and isinstance(certificate.get("notAfter"), str):
        seconds = ssl.cert_time_to_seconds(str(certificate["notAfter"]))
        not_after = datetime.fromtimestamp(seconds, UTC)
    return TlsOutcome(address, version, not_after)


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return exc.strerror or type(exc).__name__


def _ssl_reason(exc: ssl.SSLError) -> str:
    reason = (exc.reason or "").upper()
    if reason in {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}:
        # What OpenSSL reports when the answer is not a TLS record at all.
        return f"the server does not speak TLS here (plain HTTP?) ({exc.reason})"
    if "PROTOCOL" in reason or "VERSION" in reason:
        return f"no TLS 1.2 or later offered ({exc.reason})"
    return str(exc.reason or exc.strerror or type(exc).__name__)


def upstream_systems(manifest: Manifest) -> dict[str, list[str]]:
    """Each system a route forwards to, and the integrations whose routes do."""
    users: dict[str, list[str]] = {}
    for name, integration in sorted(manifest.integrations.items()):
        for route in integration.routes:
            names = users.setdefault(route.upstream, [])
            if name not in names:
                names.append(name)
    return {s: users[s] for s in sorted(users) if s in manifest.systems}


def tls_findings(manifest: Manifest, trust: Trust, now: datetime, timeout: float) -> list[Finding]:
    """``tls_required`` and ``certificates_validated`` per integration: one probe per system."""
    findings: list[Finding] = []
    for system_name, integrations in upstream_systems(manifest).items():
        system = manifest.systems[system_name]
        outcome = probe_system(system, trust, timeout)
        where = f"system {system_name} ({outcome.address}, ca {system.ca})"
        evidence = (f"live TLS probe of {where}",)
        wanted = (system.tls or manifest.tls).min_version
        findings.extend(
            Finding(v.item, integration, v.status, f"{where}{v.reason}", evidence, fix=v.fix,
                    live=True)
            for integration in integrations
            for v in _judge(outcome, wanted, now)
        )  # fmt: skip
    return findings


@dataclass(frozen=True)
class _Verdict:
    """One item's outcome; ``reason`` follows the system's description."""

    item: str
    status: Status
    reason: str
    fix: str | None = None


def _judge(outcome: TlsOutcome, wanted: str, now: datetime) -> list[_Verdict]:
    if outcome.error is None:
        return [_version(outcome.version or "unknown", wanted), _expiry(outcome.not_after, now)]
    if outcome.stage == "verify":
        # The server agreed a version within our floor (1.2) before it showed its certificate.
        return [
            _Verdict("tls_required", "pass", " negotiated TLS 1.2 or later"),
            _Verdict("certificates_validated", "fail", f": {outcome.error}", _FIX_TRUST),
        ]
    return [
        _Verdict("tls_required", "fail", f": {outcome.error}", _FIX_REACH),
        _Verdict(
            "certificates_validated",
            "fail",
            f": {outcome.error}; its certificate was not checked",
            _FIX_REACH,
        ),
    ]


def _version(version: str, wanted: str) -> _Verdict:
    latest = version == "TLSv1.3"
    if wanted == "1.3" and not latest:
        reason = f" negotiated {version}; the policy requires TLS 1.3"
        return _Verdict("tls_required", "fail", reason, _FIX_13)
    note = "" if latest else " (1.3 preferred)"
    return _Verdict("tls_required", "pass", f" negotiated {version}{note}")


def _expiry(not_after: datetime | None, now: datetime) -> _Verdict:
    item = "certificates_validated"
    if not_after is None:
        return _Verdict(item, "fail", ": no certificate expiry was readable")
    left = not_after - now
    when = f"{not_after:%Y-%m-%d}"
    if left <= timedelta(0):
        return _Verdict(item, "fail", f": certificate expired on {when}", _RENEW)
    if left < EXPIRY_MARGIN:
        return _Verdict(item, "fail", f": certificate expires in {left.days} days ({when})", _RENEW)
    reason = f": chain and host name verified; expires in {left.days} days ({when})"
    return _Verdict(item, "pass", reason)


_FIX_REACH: Final = "make the system reachable from here, with TLS 1.2 or later, then re-run"
_FIX_13: Final = "enable TLS 1.3 on the system, or lower its tls.min_version"
_RENEW: Final = "renew the system's certificate (fewer than 14 days left fails the check)"
