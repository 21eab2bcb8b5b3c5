"""``python -m interlock`` runs the command-line interface."""

from interlock.cli.launch import run

if __name__ == "__main__":
    run()
