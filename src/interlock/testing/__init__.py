"""Helpers for testing Interlock and code built on it (importable, typed).

Nothing here imports pytest, so the package stays importable without it.
"""

from interlock.testing.clock import ManualClock
from interlock.testing.services import REQUIRE_SERVICES_ENV, Service, require_env, unreachable

__all__ = ["REQUIRE_SERVICES_ENV", "ManualClock", "Service", "require_env", "unreachable"]
