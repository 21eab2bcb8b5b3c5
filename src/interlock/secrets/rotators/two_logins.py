"""The secret's value of a two-login rotator: ``{"username": ..., "password": ...}``.

The PostgreSQL and shared-database rotators alternate between two login roles
(PostgreSQL gives a role one password, so the old one can only overlap on the
other login); both read which login a credential names, and its password,
the same way.
"""

from __future__ import annotations

import json
from collections.abc import Collection

from interlock.secrets.rotators.base import Credential, RotationError

__all__ = ["login_of", "password_of", "strict_login_of"]


def login_of(credential: Credential, logins: Collection[str], *, strict: bool) -> str | None:
    """The login ``credential`` names, if it is one of ``logins`` (``strict``: or raise)."""
    try:
        user = json.loads(credential.value.reveal())["username"]
    except (ValueError, KeyError, TypeError):
        if strict:
            raise RotationError(f"{credential.name} is not a JSON username and password") from None
        return None
    if user not in logins:
        if strict:
            raise RotationError(f"{credential.name} names a login this rotator does not manage")
        return None
    return str(user)


def strict_login_of(credential: Credential, logins: Collection[str]) -> str:
    """The login ``credential`` names; :class:`RotationError` when it names none of ``logins``."""
    user = login_of(credential, logins, strict=True)
    if user is None:  # login_of raised already; stated for the type checker
        raise RotationError(f"{credential.name} names no login")
    return user


def password_of(credential: Credential) -> str:
    """The password in ``credential``'s value."""
    try:
        return str(json.loads(credential.value.reveal())["password"])
    except (ValueError, KeyError, TypeError):
        raise RotationError(f"{credential.name} has no password") from None
