"""The console script and ``python -m interlock``: before the command line loads.

``interlock --version`` answers without importing the server's dependencies, and
an install without the ``server`` extra (``pip install interlock`` gives the
client SDK only) gets one line naming the extra instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Final

from interlock import __version__

__all__ = ["run"]

VERSION_FLAGS: Final = frozenset({"--version", "-V"})


def run(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: exits with the command's status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 1 and args[0] in VERSION_FLAGS:
        print(f"interlock {__version__}")  # noqa: T201 - the command's output
        sys.exit(0)
    try:
        from interlock.cli.main import main
    except ModuleNotFoundError as missing:
        top = (missing.name or "").partition(".")[0]
        if not top or top == "interlock":
            raise
        print(  # noqa: T201 - a one-line error on stderr, as every CLI failure
            f"interlock: error[missing_extra]: the interlock command needs the server "
            f"dependencies ({top} is not installed): pip install 'interlock[server]'",
            file=sys.stderr,
        )
        sys.exit(1)
    sys.exit(main(args))
