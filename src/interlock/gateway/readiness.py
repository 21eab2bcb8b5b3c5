"""``GET /readyz``: whether this process can serve, not only whether it answers.

``/healthz`` says the process is alive; a load balancer or an orchestrator
asks ``/readyz`` before sending traffic. It checks what every request needs:
the store (keys, grants, the vault), the audit database (no request is
answered without its entry), Redis when configured (shared limits and replay
state) and a usable token-signing key. All pass: 200 with the checks; any
fails or takes longer than :data:`CHECK_SECONDS`: a 503 problem naming the
failed checks, never their errors (those go to the log).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.engine import Engine

from interlock.errors import Refusal
from interlock.logs import get_logger

__all__ = ["CHECK_SECONDS", "Readiness", "engine_check"]

_log = get_logger("interlock.gateway")
#: How long one check may take before it counts as failed.
CHECK_SECONDS: Final = 2.0

Check = Callable[[], object]


def engine_check(engine: Engine) -> Check:
    """A check that ``engine``'s database answers a query."""

    def check() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return check


@dataclass(frozen=True)
class Readiness:
    """``GET /readyz``: each named check runs in a worker thread, all at once."""

    checks: Mapping[str, Check]
    # Facts reported with the answer (the manifest version enforced: docs/scale.md).
    facts: Callable[[], Mapping[str, object]] | None = None

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """200 ``{"status": "ready", "checks": {...}}``, or a 503 problem."""
        names = list(self.checks)
        results = await asyncio.gather(*(self._run(name) for name in names))
        outcome = dict(zip(names, results, strict=True))
        failed = [name for name, ok in outcome.items() if not ok]
        facts = dict(self.facts()) if self.facts is not None else {}
        if failed:
            raise Refusal(
                "not-ready",
                f"not ready: {', '.join(failed)} unavailable",
                extra={
                    "checks": {n: "ok" if ok else "failed" for n, ok in outcome.items()},
                    **facts,
                },
                log_reason=f"not ready: {', '.join(failed)}",
            )
        return web.json_response(
            {"status": "ready", "checks": dict.fromkeys(names, "ok"), **facts},
            headers={"Cache-Control": "no-store"},
        )

    async def _run(self, name: str) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(self.checks[name]), CHECK_SECONDS)
        except Exception as exc:  # noqa: BLE001  (any failure means "not ready"; logged)
            _log.warning("readiness check failed", check=name, error=type(exc).__name__)
            return False
        return True
