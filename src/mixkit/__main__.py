"""``python -m mixkit`` runs the CLI (``--version`` prints the version)."""

from mixkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
