"""Our own exceptions: library errors are translated into these at the edges."""


class BemsError(Exception):
    """An error a user can act on; the CLI prints it as one line, without a traceback."""


class StoreError(BemsError):
    """The database cannot be opened, migrated or written."""


class DeviceError(BemsError):
    """A field device could not be read or written."""


class DeviceUnreachable(DeviceError):
    """The device did not answer in time."""


class DeviceRefused(DeviceError):
    """The device answered with an error (out of range, write access denied, ...); `code` is
    the protocol's error code when it has one (BACnet's `unknown-property`, ...)."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code or next((c for c in KNOWN_CODES if c in message), "")


# error codes the core acts on, whichever protocol reports them
KNOWN_CODES = ("unknown-property", "unknown-object", "value-out-of-range",
               "write-access-denied")
