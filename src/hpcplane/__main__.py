"""`python -m hpcplane` runs the CLI."""

from hpcplane.cli import main

main()
