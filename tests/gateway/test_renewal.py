"""Certificates the gateway uses itself: renewed when a third of their life is left; expiry metrics."""

from __future__ import annotations

import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from interlock.crypto.pkix import (
    certificate_pem,
    issue_server_certificate,
    private_key_pem,
    self_signed_ca,
)
from interlock.gateway.renewal import RenewingCertificate
from interlock.pki.authority import Issued
from interlock.testing.clock import ManualClock
from interlock.testing.gateway import Env


def test_renewal_happens_when_a_third_of_the_lifetime_is_left(tmp_path: Path) -> None:
    """30-day certificates: kept on day 19, renewed on day 21, and loaded into every context."""
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    ca, ca_key = self_signed_ca("Renewal test CA", timedelta(days=365), now=clock.now)
    issued: list[Issued] = []

    def issue() -> Issued:
        cert, key = issue_server_certificate(
            ca, ca_key, ["localhost"], timedelta(days=30), now=clock.now
        )
        issued.append(
            Issued(
                format(cert.serial_number, "x"),
                certificate_pem(cert),
                private_key_pem(key),
                cert.not_valid_after_utc,
            )
        )
        return issued[-1]

    renewing = RenewingCertificate("listener", issue, tmp_path, now=clock)
    contexts = [ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) for _ in range(2)]
    for context in contexts:
        renewing.attach(context)
    assert len(issued) == 1
    clock.now += timedelta(days=19)
    assert not renewing.renew_if_due()
    clock.now += timedelta(days=2)
    assert renewing.renew_if_due()
    assert len(issued) == 2
    assert renewing.current is issued[-1]
    days = renewing.days_left()
    assert days is not None
    assert 29 < days <= 30


def test_expiry_times_are_published(env: Env) -> None:
    """Metrics: when the listener certificate and both CAs expire, as Unix timestamps."""
    deadline = time.monotonic() + 10
    while True:
        text = env.metrics()
        if 'certificate="issuing-ca"' in text or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for name in ("listener", "root-ca", "issuing-ca"):
        line = f'interlock_certificate_expiry_timestamp_seconds{{certificate="{name}"}} '
        (value,) = [row.removeprefix(line) for row in text.splitlines() if row.startswith(line)]
        assert float(value) > time.time()
