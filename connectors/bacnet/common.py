"""What the BACnet client and the simulated devices share: BACnet values as plain Python, and
the check that a UDP port is free (bacpypes3 binds with SO_REUSEPORT and would share a taken
port silently). Nothing here opens a connection."""

from __future__ import annotations

import socket
from typing import Any

from bacpypes3.primitivedata import Null


def port_free(host: str, port: int) -> bool:
    """True if nothing is bound to UDP host:port (bacpypes3 would share a taken port silently,
    because it binds with SO_REUSEPORT)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def plain(value: Any) -> Any:
    """A BACnet value as plain Python: numbers as float, binary as 0/1, null as None."""
    if value is None or isinstance(value, Null):
        return None
    s = str(value)
    if s in ("active", "inactive", "on", "off"):  # binary, and binary lighting outputs
        return 1.0 if s in ("active", "on") else 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return s
