"""`python -m bems` is the `bems` command."""

from bems.cli import entry

entry()
