"""Our own exceptions: library errors are translated into these at the edges."""


class BemsError(Exception):
    """An error a user can act on; the CLI prints it as one line, without a traceback."""


class StoreError(BemsError):
    """The database cannot be opened, migrated or written."""
