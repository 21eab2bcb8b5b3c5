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
from typing import Final
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

#: One item's verdict: item id, status, reason, evidence, fix.
_Verdict = tuple[str, Status, str, tuple[str, ...], str | None]

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
    stage: str = "handshake"  # "connect", "handshake", "verify", "trust"


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
        wanted = (system.tls or manifest.tls).min_version
        pair = _judge(system_name, system, outcome, wanted, now)
        findings.extend(
            Finding(item, integration, status, reason, evidence, fix=fix, live=True)
            for integration in integrations
            for item, status, reason, evidence, fix in pair
        )
    return findings


def _judge(
    name: str, system: System, outcome: TlsOutcome, wanted: str, now: datetime
) -> list[_Verdict]:
    where = f"system {name} ({outcome.address}, ca {system.ca})"
    evidence = (f"live TLS probe of {where}",)
    if outcome.error is not None:
        if outcome.stage == "verify":
            # The server agreed a version within our floor before it showed its certificate.
            return [
                ("tls_required", "pass", f"{where} negotiated TLS 1.2 or later", evidence, None),
                ("certificates_validated", "fail", f"{where}: {outcome.error}", evidence,
                 _FIX_TRUST),
            ]  # fmt: skip
        fix = "make the system reachable from here, with TLS 1.2 or later, then re-run"
        reason = f"{where}: {outcome.error}"
        return [
            ("tls_required", "fail", reason, evidence, fix),
            ("certificates_validated", "fail", f"{reason}; its certificate was not checked",
             evidence, fix),
        ]  # fmt: skip
    version = outcome.version or "unknown"
    numbers = version.removeprefix("TLSv")
    tls: _Verdict = (
        ("tls_required", "fail",
         f"{where} negotiated {version}; the policy requires TLS {wanted}", evidence,
         "enable TLS 1.3 on the system, or lower tls.min_version")
        if wanted == "1.3" and numbers != "1.3"
        else ("tls_required", "pass",
              f"{where} negotiated {version}" + ("" if numbers == "1.3" else " (1.3 preferred)"),
              evidence, None)
    )  # fmt: skip
    return [tls, _expiry(where, outcome.not_after, now, evidence)]


def _expiry(
    where: str, not_after: datetime | None, now: datetime, evidence: tuple[str, ...]
) -> _Verdict:
    item = "certificates_validated"
    if not_after is None:
        return (item, "fail", f"{where}: no certificate expiry was readable", evidence, None)
    left = not_after - now
    days = left.days
    when = f"{not_after:%Y-%m-%d}"
    if left <= timedelta(0):
        return (item, "fail", f"{where}: certificate expired on {when}", evidence, _RENEW)
    if left < EXPIRY_MARGIN:
        return (item, "fail", f"{where}: certificate expires in {days} days ({when})", evidence,
                _RENEW)  # fmt: skip
    reason = f"{where}: chain and host name verified; expires in {days} days ({when})"
    return (item, "pass", reason, evidence, None)


_RENEW: Final = "renew the system's certificate (fewer than 14 days left fails the check)"
