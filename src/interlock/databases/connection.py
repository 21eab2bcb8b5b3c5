"""How Interlock reaches a database system: the admin credential and the TLS settings.

The admin credential is a JSON ``{"username": ..., "password": ...}`` in
the vault (the manifest names it by ``secret://`` reference); the host, port,
database and TLS settings come from the manifest only, so a credential can
never point Interlock at another server or switch verification off.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any, Final

from interlock.config.databases import DatabaseSystem
from interlock.errors import InvalidRequestError
from interlock.secret import Secret

__all__ = ["CONNECT_SECONDS", "Login", "login_from", "mariadb_ssl", "postgresql_params"]

CONNECT_SECONDS: Final = 10


@dataclass(frozen=True)
class Login:
    """A user name and its password (kept as a :class:`Secret`)."""

    username: str
    password: Secret


def login_from(value: Secret, what: str = "the admin credential") -> Login:
    """``{"username", "password"}`` JSON; :class:`InvalidRequestError` without echoing it."""
    try:
        decoded = json.loads(value.reveal())
        username, password = decoded["username"], decoded.get("password", "")
    except (ValueError, KeyError, TypeError):
        raise InvalidRequestError(
            f'{what} is not JSON {{"username": ..., "password": ...}}'
        ) from None
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise InvalidRequestError(f"{what} needs a user name and a password (strings)")
    return Login(username, Secret(password.encode()))


def _ca_file(system: DatabaseSystem) -> str | None:
    ca = system.ca or "system"
    return None if ca == "system" else ca.removeprefix("file:")


def postgresql_params(
    system: DatabaseSystem, login: Login, database: str | None = None
) -> dict[str, Any]:
    """libpq parameters: ``verify-full`` against the declared CA, or no TLS on loopback."""
    params: dict[str, Any] = {
        "host": system.host,
        "port": system.default_port,
        "dbname": database or system.database,
        "user": login.username,
        "connect_timeout": CONNECT_SECONDS,
    }
    password = login.password.reveal().decode()
    if password:
        params["password"] = password
    if system.tls == "disable":
        params["sslmode"] = "disable"
    else:
        params["sslmode"] = "verify-full"
        params["sslrootcert"] = _ca_file(system) or "system"
    return params


def mariadb_ssl(system: DatabaseSystem) -> ssl.SSLContext | None:
    """The verifying TLS context (certificate and host name), or None on loopback."""
    if system.tls == "disable":
        return None
    context = ssl.create_default_context(cafile=_ca_file(system))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context
