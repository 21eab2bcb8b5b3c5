"""The manifest's file integrations by transport, to suggest one for a mistyped name."""

from __future__ import annotations

from interlock.config.manifest import Manifest
from interlock.errors import did_you_mean

__all__ = ["file_flows", "suggest_file_flow"]


def file_flows(manifest: Manifest, transport: str | None = None) -> list[str]:
    """The integrations with a ``files:`` section (of ``transport``, when given)."""
    return [
        name
        for name, flow in manifest.integrations.items()
        if flow.files is not None and transport in {None, flow.files.transport}
    ]


def suggest_file_flow(manifest: Manifest, name: str, transport: str | None = None) -> str:
    """``; did you mean 'x'?`` among the file integrations (of ``transport``), or ``""``."""
    return did_you_mean(name, file_flows(manifest, transport))
