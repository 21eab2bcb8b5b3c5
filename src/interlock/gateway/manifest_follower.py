"""Store mode (``INTERLOCK_MANIFEST_SOURCE=store``): serve the current stored manifest, follow it.

Each replica asks the store for the current version's number and hash every
``INTERLOCK_MANIFEST_POLL_SECONDS`` (one indexed query; SQLite and PostgreSQL
alike) and, when it changed, loads and validates the new text and swaps a new
gateway into the listener, exactly as a SIGHUP reload does with a file (SIGHUP
in store mode polls at once). So a change reaches every replica within one
poll interval plus the time to assemble a gateway.

Fail closed: a replica that sees a newer version it cannot load (invalid for
this release, a referenced XSD missing on this host, a secret the vault
lacks) stops taking traffic (503, ``/readyz`` not ready) rather than go on
enforcing the old grants; so does one that could not confirm the current
version for ``INTERLOCK_MANIFEST_MAX_STALE_SECONDS`` (the store unreachable).
It takes traffic again as soon as it enforces the current version.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.errors import ConfigError, InterlockError
from interlock.gateway.server import RunningGateway, check_secrets, refusal_reason
from interlock.logs import get_logger
from interlock.store.manifest_versions import (
    ManifestMarker,
    ManifestVersion,
    current_marker,
    current_version,
)
from interlock.validation.artifacts import route_artifacts

__all__ = ["ManifestFollower", "load_stored_manifest", "stored_manifest"]

_log = get_logger("interlock.gateway")


def load_stored_manifest(stored: ManifestVersion, work_dir: Path, manifest_dir: Path) -> Manifest:
    """Validate ``stored`` as a manifest file would be (errors name ``manifest-vN.yaml``).

    The text is written to ``work_dir`` (0600) so that diagnostics point at a
    file an operator can open; files it references (an XSD) are looked up in
    ``manifest_dir``, this host's manifest directory.
    """
    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = work_dir / f"manifest-v{stored.version}.yaml"
    path.touch(mode=0o600)
    path.write_text(stored.text, encoding="utf-8")
    return load_manifest(path, lambda manifest, _: route_artifacts(manifest, manifest_dir))


def stored_manifest(engine: Engine) -> ManifestVersion:
    """The current stored version, or a :class:`ConfigError` saying how to publish one."""
    stored = current_version(engine)
    if stored is None:
        raise ConfigError(
            "INTERLOCK_MANIFEST_SOURCE=store but the store holds no manifest version; "
            "publish one with `interlock manifest apply FILE`"
        )
    return stored


@dataclass
class ManifestFollower:
    """Polls the store for the current version and swaps it into ``running``."""

    running: RunningGateway
    settings: Settings
    enforcing: ManifestMarker
    clock: Callable[[], float] = time.monotonic
    _confirmed: float = field(init=False)
    _failed: int | None = field(init=False, default=None)  # the version that did not load
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._confirmed = self.clock()

    @property
    def _engine(self) -> Engine:
        return self.running.services.deployment.engine

    def reload(self) -> bool:
        """SIGHUP: poll now instead of at the next interval."""
        self._wake.set()
        return True

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.manifest_poll_seconds)
            self._wake.clear()
            try:
                await self.poll()
            except Exception as exc:  # noqa: BLE001  one failed poll never ends the follower
                # Fail closed: without a poll this replica cannot know it enforces the
                # current version. Type only: the text may hold a path or a secret.
                reason = f"manifest poll failed ({type(exc).__name__})"
                _log.error("manifest poll failed; answering 503 until one succeeds", error=reason)
                self.running.services.metrics.manifest_reload_failed("store")
                self.running.refuse(reason)

    async def poll(self) -> None:
        """Check the current version once; load it if it changed; refuse traffic if stale."""
        try:
            marker = await asyncio.to_thread(current_marker, self._engine)
        except (SQLAlchemyError, InterlockError) as exc:
            self._unconfirmed(f"store unreachable ({type(exc).__name__})")
            return
        if marker is None or marker == self.enforcing:
            self._confirmed = self.clock()
            if self.running.services.manifest_status.refusing is not None:
                self._enforce(self.enforcing, "manifest current again; taking traffic")
            return
        try:
            await asyncio.to_thread(self._swap, marker.version)
        except Exception as exc:  # noqa: BLE001  whatever fails, the version is not enforced
            reason = f"cannot load manifest version {marker.version}: {refusal_reason(exc)}"
            self.running.services.metrics.manifest_reload_failed("store")
            if self._failed != marker.version:  # logged and audited once per version
                self._failed = marker.version
                _log.error("manifest version refused; answering 503 until it loads", error=reason)
                self.running.services.audit.reload(f"store:v{marker.version}", reason)
            self.running.refuse(reason)

    def _swap(self, version: int) -> None:
        stored = current_version(self._engine, version)
        if stored is None:
            raise ConfigError(f"manifest version {version} vanished from the store")
        manifest = load_stored_manifest(
            stored, self.settings.data_dir / "manifests", self.settings.manifest.parent
        )
        check_secrets(self.running.services, manifest)
        self.running.replace(manifest)
        self._confirmed = self.clock()
        self._failed = None
        self.running.services.audit.reload(f"store:v{version}", None)
        self._enforce(stored.marker, "manifest version loaded")

    def _enforce(self, marker: ManifestMarker, message: str) -> None:
        self.enforcing = marker
        self.running.enforce("store", marker.version, marker.sha256)
        _log.info(message, version=marker.version, sha256=marker.sha256)

    def _unconfirmed(self, reason: str) -> None:
        stale_for = self.clock() - self._confirmed
        if stale_for < self.settings.manifest_max_stale_seconds:
            _log.warning("cannot confirm the current manifest version", error=reason)
            return
        if self.running.services.manifest_status.refusing is None:
            _log.error(
                "current manifest version unconfirmed too long; answering 503",
                error=reason,
                seconds=round(stale_for, 1),
            )
        self.running.refuse(f"current manifest version unconfirmed: {reason}")
