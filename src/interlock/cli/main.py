"""CLI entry point."""


def run() -> None:
    """Run the CLI."""
