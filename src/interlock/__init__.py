"""Interlock: the security layer for system-to-system integrations."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("interlock")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
