"""Per-invocation state of the CLI (global options) and shared helpers."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from interlock.config.settings import Settings, load_settings
from interlock.logs import configure_logging

__all__ = ["CliState", "console", "make_console", "settings", "state"]


@dataclass
class CliState:
    """Values of the global options, set by the top-level callback."""

    data_dir: str | None = None
    debug: bool = False


state = CliState()


def make_console(**options: Any) -> Console:
    """A console for command output; with ``NO_COLOR`` set, plain text.

    rich alone drops only the colours under ``NO_COLOR`` and keeps bold and
    italics; without a colour system it writes no escape sequence at all.
    """
    if os.environ.get("NO_COLOR", ""):
        options["color_system"] = None
    return Console(highlight=False, **options)


# Off a terminal (pipes, CI logs) rich would assume 80 columns and truncate tables.
console = make_console(width=None if sys.stdout.isatty() else 140)


def settings() -> Settings:
    """Settings from the environment, with ``--data-dir`` applied; logging configured."""
    overrides: dict[str, object] = {}
    if state.data_dir is not None:
        overrides["data_dir"] = Path(state.data_dir)
    loaded = load_settings(**overrides)
    configure_logging("debug" if state.debug else loaded.log_level, loaded.log_format)
    return loaded


def served_anchors(current: Settings) -> dict[str, Path]:
    """The trust anchors a command on the gateway's host knows: the local CA as
    ``pki:internal``, once ``interlock serve`` has written ``DATA_DIR/ca.pem``."""
    from interlock.pki.local_ca import LOCAL_CA_NAME  # only the commands that need it pay

    ca_file = current.data_dir / "ca.pem"
    return {f"pki:{LOCAL_CA_NAME}": ca_file} if ca_file.exists() else {}
