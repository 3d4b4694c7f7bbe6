"""Network namespaces the tests make themselves: real IP subnets with real broadcast, where a
BACnet broadcast reaches every device of its subnet and only those — which loopback cannot
give (a datagram to 127.x.y.255 reaches one socket, not all).

One namespace holds one Linux bridge per subnet, each with the addresses the test asks for.
Processes run inside with `ip netns exec`; code in this process enters it with `inside()`
(sockets created there stay in the namespace after the thread leaves it). Needs root and
iproute2; `available()` says whether this machine has both.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shutil
import subprocess
import threading
from typing import Iterator

CLONE_NEWNET = 0x40000000
_seq = itertools.count()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def available() -> str | None:
    """None if namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"bems-probe-{os.getpid()}"
    try:
        _ip("netns", "add", name)
        _ip("netns", "del", name)
    except (subprocess.CalledProcessError, OSError) as err:
        return f"cannot create a network namespace: {err}"
    return None


class Namespace:
    """`subnets`: {bridge name: [addresses with prefix, e.g. "10.10.0.5/24"]}."""

    def __init__(self, subnets: dict[str, list[str]]):
        self.name = f"bems-{os.getpid()}-{next(_seq)}"
        self.subnets = subnets

    def __enter__(self) -> "Namespace":
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            for bridge, addresses in self.subnets.items():
                _ip("-n", self.name, "link", "add", bridge, "type", "bridge")
                _ip("-n", self.name, "link", "set", bridge, "up")
                for a in addresses:
                    _ip("-n", self.name, "addr", "add", a, "dev", bridge)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """This thread in the namespace (and threads it starts meanwhile), then back."""
        libc = ctypes.CDLL(None, use_errno=True)
        here = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        there = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(there, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the test namespace failed")
            try:
                yield
            finally:
                if libc.setns(here, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back failed")
        finally:
            os.close(here)
            os.close(there)


def end(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Stop a child that stops at end of its input (the field network): close its stdin,
    wait, kill if it will not go; close its pipes."""
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe:
            pipe.close()
