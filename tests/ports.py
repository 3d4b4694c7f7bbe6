"""Free ports for tests, so two suites (or a suite beside `bems demo`) run side by side.

Ports come from the kernel (bind to port 0), or from BEMS_TEST_PORTS=FIRST-LAST when a machine
wants tests kept to a range.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
from pathlib import Path

from bems.config import demo_site_path

_range = os.environ.get("BEMS_TEST_PORTS", "")
_next = itertools.count(int(_range.split("-")[0])) if _range else None


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP."""
    if _next is not None:
        last = int(_range.split("-")[1])
        for port in _next:
            if port > last:
                raise RuntimeError(f"BEMS_TEST_PORTS={_range}: no free port left")
            if _bindable(port):
                return port
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if _bindable(port):
            return port


def demo_site_on_free_ports(path: Path) -> Path:
    """The demo site file with every device on a free UDP port, written to `path`."""
    text = Path(demo_site_path()).read_text(encoding="utf-8")
    taken: set[int] = set()

    def fresh(m: re.Match) -> str:
        port = free_port()
        while port in taken:
            port = free_port()
        taken.add(port)
        return f'address = "127.0.0.1:{port}"'

    path.write_text(re.sub(r'address = "127\.0\.0\.1:\d+"', fresh, text), encoding="utf-8")
    return path
