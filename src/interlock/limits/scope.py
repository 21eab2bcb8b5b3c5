"""How much of each budget this process may spend: limits honest about their scope.

Limits held in process are per process. Behind one listener (``serve
--reuse-port``) or one load balancer, N processes without a shared backend
would each admit the full rate: every limit, and every failure budget against
secret guessing, N times larger than the manifest says, silently. So with
more than one process and no Redis a gateway either refuses to start (the
default) or, by the operator's explicit choice (``INTERLOCK_LOCAL_LIMITS=divide``
and ``INTERLOCK_WORKERS=N``), enforces ``limit // N`` of every budget, with a
warning at every start. With Redis the budgets are shared; the declared
``INTERLOCK_WORKERS`` then only divides the in-process fallback of
``INTERLOCK_RATE_LIMIT_FAILURE=open``, so that N processes falling back
together still stay within the budget. docs/scale.md explains the choice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from interlock.errors import ConfigError
from interlock.logs import get_logger

if TYPE_CHECKING:
    from interlock.config.settings import Settings

__all__ = ["LocalLimits", "check_scope", "in_process_shares"]

LocalLimits = Literal["refuse", "divide"]
_log = get_logger("interlock.limits")


def in_process_shares(
    *, shared_backend: bool, workers: int, local_limits: LocalLimits, reuse_port: bool = False
) -> int:
    """The number of processes an in-process budget is divided among (1: not divided).

    Raises :class:`ConfigError` when several processes would each enforce the
    whole budget: no Redis, and ``reuse_port`` or ``workers`` > 1, unless the
    operator chose ``divide`` and declared how many workers there are.
    """
    _check_shared(
        shared_backend=shared_backend,
        workers=workers,
        local_limits=local_limits,
        reuse_port=reuse_port,
    )
    if shared_backend:
        return workers  # the open fallback's share; the shared budget is whole
    if not reuse_port and workers == 1:
        return 1
    _log.warning(
        "rate limits are in process and divided: each process enforces 1/N of every budget; "
        "uneven load makes the whole admit less, a process that dies takes its share with it, "
        "and a limit below N admits one per process. Set INTERLOCK_REDIS_URL for exact limits",
        workers=workers,
    )
    return workers


def check_scope(settings: Settings, *, reuse_port: bool) -> None:
    """Refuse what :func:`in_process_shares` would refuse, logging nothing.

    For a command starting a gateway process, before it issues or binds
    anything: ``reuse_port`` when it shares its port with other processes.
    """
    _check_shared(
        shared_backend=settings.redis_url is not None,
        workers=settings.workers,
        local_limits=settings.local_limits,
        reuse_port=reuse_port,
    )


def _check_shared(
    *, shared_backend: bool, workers: int, local_limits: LocalLimits, reuse_port: bool
) -> None:
    if shared_backend or (not reuse_port and workers == 1):
        return
    if local_limits == "refuse":
        raise ConfigError(
            "several gateway processes without Redis would each enforce every rate limit and "
            "failure budget in full (N processes: N times the limit); set INTERLOCK_REDIS_URL, "
            "or INTERLOCK_LOCAL_LIMITS=divide with INTERLOCK_WORKERS=N (docs/scale.md)"
        )
    if workers == 1:
        raise ConfigError(
            "--reuse-port with INTERLOCK_LOCAL_LIMITS=divide needs INTERLOCK_WORKERS=N, the "
            "number of gateway processes sharing the budgets"
        )
