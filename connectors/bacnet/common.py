"""What the BACnet client and the simulated devices share: BACnet values as plain Python, and
the check that a UDP port is free (bacpypes3 binds with SO_REUSEPORT and would share a taken
port silently). Nothing here opens a connection."""

from __future__ import annotations

import os
import socket
from pathlib import Path
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


def port_holder(port: int) -> str:
    """Who holds UDP `port` on this machine, as "process PID (command)", "this process", or ""
    when it cannot be told (another user's process, no /proc): for the "in use" messages."""
    inodes = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[1].rsplit(":", 1)[-1] == f"{port:04X}":
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return ""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if not any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                continue
            if int(proc.name) == os.getpid():
                return "this process"
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            return f"process {proc.name} ({cmd.strip()[:120]})"
        except OSError:
            continue
    return ""


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
