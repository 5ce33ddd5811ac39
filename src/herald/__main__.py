"""``python -m herald`` runs the CLI."""

from herald.cli import main

main()
