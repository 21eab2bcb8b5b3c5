"""Shared parts of the ``--live`` tests: a manifest around given systems, certificates."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from interlock.check.live_tls import Trust
from interlock.config.manifest import Manifest
from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import (
    certificate_pem,
    issue_server_certificate,
    private_key_pem,
    self_signed_ca,
)
from interlock.gateway.tls import trust_context
from interlock.testing.tls import LocalTls


def manifest_with(systems: dict[str, dict[str, Any]], **extra: Any) -> Manifest:
    """A valid manifest: one integration per system, each with a GET and a POST route to it."""
    integrations = {
        f"to-{name}": {
            "source": name,
            "target": name,
            "client": "sync",
            "purpose": "Test live probes",
            "legal_basis": "contract",
            "retention": "30d",
            "routes": [
                {"method": "GET", "path": f"/{name}/orders/{{id}}", "upstream": name,
                 "scope": "orders.read"},
                {"method": "POST", "path": f"/{name}/orders", "upstream": name,
                 "scope": "orders.read"},
            ],
        }
        for name in systems
    }  # fmt: skip
    return Manifest.model_validate(
        {
            "version": 1,
            "systems": {n: {"location": "DE", **s} for n, s in systems.items()},
            "roles": {"reader": {"scopes": ["orders.read"]}},
            "clients": {"sync": {"auth": ["api_key"], "roles": ["reader"]}},
            "integrations": integrations,
            **extra,
        }
    )


def certificates(
    folder: Path,
    *,
    hosts: tuple[str, ...] = ("localhost",),
    lifetime: timedelta = timedelta(days=90),
    issued: datetime | None = None,
) -> LocalTls:
    """A CA (valid a year) and a server certificate for ``hosts`` issued at ``issued``."""
    now = datetime.now(UTC)
    start = issued or now
    ca, ca_key = self_signed_ca("Live probe test CA", timedelta(days=400), now=start)
    leaf, key = issue_server_certificate(ca, ca_key, list(hosts), lifetime, now=start)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_bytes(certificate_pem(ca))
    (folder / "server.pem").write_bytes(certificate_pem(leaf))
    write_private_file(folder / "server.key", private_key_pem(key))
    return LocalTls(folder / "ca.pem", folder / "server.pem", folder / "server.key")


def trust_of(anchors: dict[str, Path]) -> Trust:
    """``trust`` as the face builds it: the gateway's own anchors, TLS 1.2 as the floor."""
    return lambda ca: trust_context(ca, anchors, "1.2")


@dataclass(frozen=True)
class Tls12Only(LocalTls):
    """A server that offers TLS 1.2 at most."""

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.2 only."""
        context = super().server_context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        return context
