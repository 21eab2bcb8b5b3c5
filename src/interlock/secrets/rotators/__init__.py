"""Rotators: how a secret's new value reaches its target, one module per kind of target.

The names are an allow-list; a secret configured with any other rotator
cannot be rotated. Modules are imported when first used, so that rotating an
API key does not load the PostgreSQL driver.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Final

from interlock.errors import InvalidRequestError, MissingExtraError
from interlock.secrets.rotators.base import Rotator, RotatorContext

__all__ = ["ROTATORS", "Rotator", "RotatorContext", "build"]

ROTATORS: Final[Mapping[str, str]] = {
    "api_key": "interlock.secrets.rotators.api_key",
    "oauth_client_secret": "interlock.secrets.rotators.oauth_client_secret",
    "postgresql": "interlock.secrets.rotators.postgresql",
    "shared_database": "interlock.secrets.rotators.shared_database",
    "tls_certificate": "interlock.secrets.rotators.tls_certificate",
    "webhook": "interlock.secrets.rotators.webhook",
}


#: The extra each rotator's driver comes with, when it is not in the server set.
EXTRAS: Final[Mapping[str, str]] = {"postgresql": "postgres"}


def build(name: str, config: Mapping[str, Any], context: RotatorContext) -> Rotator:
    """The rotator ``name`` with its settings; :class:`InvalidRequestError` if unknown."""
    module = ROTATORS.get(name)
    if module is None:
        raise InvalidRequestError(
            f"unknown rotator {name!r}; choose from {', '.join(sorted(ROTATORS))}"
        )
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as missing:
        if missing.name is not None and missing.name.startswith("interlock"):
            raise
        raise MissingExtraError(
            f"the {name} rotator", EXTRAS.get(name, "server"), missing
        ) from None
    rotator: Rotator = loaded.build(config, context)
    return rotator
