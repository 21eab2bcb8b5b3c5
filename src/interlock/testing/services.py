"""Find the real backing services tests run against (PostgreSQL, Redis, ...).

Each service's URL comes from an environment variable with a local default.
A test that cannot reach its service is skipped with the reason, unless
``INTERLOCK_REQUIRE_SERVICES=1`` (set by CI), where it must fail instead, so
CI always exercises the real thing.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "MARIADB",
    "POSTGRES",
    "REDIS",
    "REQUIRE_SERVICES_ENV",
    "Service",
    "require_env",
    "unreachable",
]

REQUIRE_SERVICES_ENV: Final = "INTERLOCK_REQUIRE_SERVICES"


@dataclass(frozen=True)
class Service:
    """A backing service: a name, the variable naming its URL, and a default."""

    name: str
    env: str
    default: str

    @property
    def url(self) -> str:
        """The URL from the environment, or the default."""
        return os.environ.get(self.env) or self.default


POSTGRES: Final = Service(
    "PostgreSQL", "INTERLOCK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS: Final = Service("Redis", "INTERLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: A MariaDB (or MySQL) server whose database ``test`` the SQL connector's tests use.
MARIADB: Final = Service(
    "MariaDB", "INTERLOCK_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)


def require_env() -> bool:
    """Whether an unreachable service is a failure rather than a skip."""
    return os.environ.get(REQUIRE_SERVICES_ENV) == "1"


def unreachable(service: Service, timeout: float = 2.0) -> str | None:
    """Why ``service`` cannot be reached (a sentence), or ``None`` when it can."""
    parts = urlsplit(service.url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    if port is None:
        return f"{service.name}: {service.env} names no port"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return (
            f"{service.name} is not reachable at {host}:{port} ({exc.strerror or exc}); "
            f"set {service.env} or start it"
        )
