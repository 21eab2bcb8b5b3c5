"""Helpers for testing Interlock and code built on it (importable, typed).

Nothing here imports pytest, so the package stays importable without it. Besides
what is re-exported here: ``interlock.testing.gateway`` (a running gateway with
its upstream processes), ``interlock.testing.tls`` (a CA made at run time and an
HTTPS test server), ``interlock.testing.softhsm``, ``interlock.testing.sample_erp``,
``interlock.testing.scan_corpus`` and ``interlock.testing.postgres_node`` (a PostgreSQL
of the test's own, which it may stop and start).
"""

from interlock.testing.clock import ManualClock
from interlock.testing.services import REQUIRE_SERVICES_ENV, Service, require_env, unreachable

__all__ = ["REQUIRE_SERVICES_ENV", "ManualClock", "Service", "require_env", "unreachable"]
