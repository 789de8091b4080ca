"""`python -m engine` runs the mgreview CLI."""

from engine.cli import main

main()
