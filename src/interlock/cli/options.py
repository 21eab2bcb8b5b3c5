"""Options shared by several commands."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from interlock.config.units import parse_duration
from interlock.errors import InvalidRequestError

__all__ = ["ManifestOption", "duration_option"]

ManifestOption = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        "-m",
        help="The manifest (default: INTERLOCK_MANIFEST or ./interlock.yaml).",
        show_default=False,
    ),
]


def duration_option(text: str | None) -> timedelta | None:
    """A duration option's value (``90d``, ``PT12H``), ``None`` when not given; a clear error."""
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
