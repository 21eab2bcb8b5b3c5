"""Options shared by several commands."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Final

import typer

from interlock.config.units import parse_duration
from interlock.errors import InvalidRequestError

__all__ = ["DEFAULT_LISTEN", "ManifestOption", "duration_option"]

#: Where ``interlock serve`` listens by default (here, so that naming it does not
#: import the gateway: ``oauth`` and ``doctor`` quote it).
DEFAULT_LISTEN: Final = "127.0.0.1:8443"

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
