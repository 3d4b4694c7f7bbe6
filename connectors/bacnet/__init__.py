"""BACnet/IP connector: gateway thread, poller, COV, discovery."""
