"""What ``serve`` checks before it serves: the port is free, the manifest's secrets exist.

Both fail with one line an operator can act on, before anything is issued or
any caller is answered: a port in use is not "internal error (OSError)" after a
listener certificate was issued, and a ``secret://`` value missing from the
vault is not discovered by the first caller as a 503.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from interlock.config.manifest import Manifest
from interlock.errors import ConfigError, InterlockError
from interlock.secrets.resolver import SecretResolver

__all__ = [
    "SecretReference",
    "check_port_free",
    "missing_secrets",
    "missing_secrets_error",
    "port_error",
    "secret_references",
]

_SCHEME = "secret://"


def port_error(host: str, port: int, exc: OSError) -> ConfigError:
    """The one-line error for a listener that cannot bind ``host:port``."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(f"port {shown} is in use")
    return ConfigError(f"cannot listen on {shown}: {exc.strerror or type(exc).__name__}")


def check_port_free(host: str, port: int, *, reuse_port: bool = False) -> None:
    """Raise :class:`ConfigError` unless every address of ``host`` can bind ``port``.

    Binds (and closes) a socket as the listener will: ``SO_REUSEADDR``, and
    ``SO_REUSEPORT`` with ``reuse_port`` (then a port held by other gateway
    processes sharing it is free). Port 0 (any free port) is always free.
    """
    if port == 0:
        return
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise port_error(host, port, exc) from None


@dataclass(frozen=True)
class SecretReference:
    """A ``secret://`` reference and where in the manifest it is (``systems.erp.credentials``)."""

    where: str
    reference: str


def secret_references(manifest: Manifest) -> list[SecretReference]:
    """Every ``secret://`` reference in ``manifest``, wherever it is, in document order."""
    return list(_walk(manifest.model_dump(mode="json"), ""))


def _walk(value: object, where: str) -> Iterator[SecretReference]:
    if isinstance(value, str):
        if value.startswith(_SCHEME):
            yield SecretReference(where, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{where}[{index}]")


def missing_secrets(manifest: Manifest, resolver: SecretResolver) -> list[SecretReference]:
    """The references of ``manifest`` that ``resolver`` has no current value for.

    Each is resolved as a request would resolve it (and so warms the cache); the
    value itself is dropped at once.
    """
    missing = []
    for found in secret_references(manifest):
        try:
            resolver.resolve(found.reference)
        except InterlockError:
            missing.append(found)
    return missing


def missing_secrets_error(missing: list[SecretReference]) -> ConfigError:
    """The one-line refusal naming the missing references (never a value)."""
    named = ", ".join(f"{m.reference} ({m.where})" for m in missing)
    return ConfigError(
        f"the manifest names secrets the vault lacks: {named}; store them with "
        "`interlock secrets put`, or set INTERLOCK_MISSING_SECRETS=start"
    )
