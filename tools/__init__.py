"""Build tooling run by the Makefile (dependency audit, floor check); not part of the package."""
