"""Free ports for tests, so two suites (or a suite beside `bems demo`) run side by side.

Ports come from below the kernel's ephemeral range (net.ipv4.ip_local_port_range), counted
on from a random start, each checked free: a port the kernel hands out for a bind to port 0
(a client socket anywhere in the run) can never be one a session-wide site file already
promised to a simulated device (that happened: "UDP 127.0.0.1:55298 is already in use").
BEMS_TEST_PORTS=FIRST-LAST keeps tests to a range instead.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import socket
from pathlib import Path

from bems.config import demo_site_path

_range = os.environ.get("BEMS_TEST_PORTS", "")


def _below_ephemeral() -> tuple[int, int]:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(1024, low - 12000), max(1025, low - 1)


if not _range:
    _lo, _hi = _below_ephemeral()
    # pytest-xdist workers each count in a slice of their own: two workers counting on from
    # random starts in one range met on the same port (a broker then failed to bind)
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    _me = int(re.sub(r"\D", "", os.environ.get("PYTEST_XDIST_WORKER", "")) or 0) % _workers
    _size = (_hi - _lo) // _workers
    _lo, _hi = _lo + _me * _size, _lo + (_me + 1) * _size - 1
    _range = f"{random.randint(_lo, _lo + (_hi - _lo) // 2)}-{_hi}"
_next = itertools.count(int(_range.split("-")[0]))


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
    last = int(_range.split("-")[1])
    for port in _next:
        if port > last:
            raise RuntimeError(f"test ports {_range}: no free port left")
        if _bindable(port):
            return port
    raise AssertionError("unreachable")


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
