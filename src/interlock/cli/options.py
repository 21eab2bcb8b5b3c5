"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["ManifestOption"]

ManifestOption = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        "-m",
        help="The manifest (default: INTERLOCK_MANIFEST or ./interlock.yaml).",
        show_default=False,
    ),
]
