"""``python -m interlock`` runs the command-line interface."""

from interlock.cli.main import run

if __name__ == "__main__":
    run()
