"""``python -m mixkit`` runs the CLI (``--version`` prints the version)."""

from mixkit.cli import entry

if __name__ == "__main__":
    entry()
