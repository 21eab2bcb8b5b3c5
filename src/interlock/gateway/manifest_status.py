"""Which manifest a gateway process enforces, for ``/readyz``, the metrics and the listener.

Replicas behind one load balancer must enforce the same grants; this is how an
operator (or a test) sees that they do. In file mode the version is the
SHA-256 of the file as loaded; in store mode (docs/scale.md) it is the version
number published by ``interlock manifest apply`` and its SHA-256. A replica
that cannot load the current stored version sets :attr:`ManifestStatus.refusing`:
the listener then answers every request but ``/healthz`` with a 503, and
``/readyz`` fails its ``manifest`` check, so the balancer takes it out instead
of letting it enforce an old manifest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["ManifestStatus", "Source", "file_sha256"]

Source = Literal["file", "store"]


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of the manifest file's bytes ("" if it cannot be read)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


@dataclass
class ManifestStatus:
    """The manifest enforced now, and why traffic is refused (None: it is not)."""

    source: Source = "file"
    version: int | None = None
    sha256: str = ""
    refusing: str | None = None

    def enforce(self, source: Source, version: int | None, sha256: str) -> None:
        """A manifest was loaded and is served from now on; traffic is accepted."""
        self.source, self.version, self.sha256, self.refusing = source, version, sha256, None

    def refuse(self, reason: str) -> None:
        """Refuse traffic until a manifest is enforced again (``reason`` is logged, not sent)."""
        self.refusing = reason

    def facts(self) -> dict[str, object]:
        """What ``/readyz`` reports: source, version (store mode), SHA-256, whether current."""
        return {
            "source": self.source,
            "version": self.version,
            "sha256": self.sha256,
            "current": self.refusing is None,
        }

    def check(self) -> None:
        """The readiness check: raises while traffic is refused."""
        if self.refusing is not None:
            raise RuntimeError(self.refusing)
