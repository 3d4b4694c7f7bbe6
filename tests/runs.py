"""`bems run` as a child process, the way an operator runs it: started, seen running, stopped
with SIGTERM. Its log (stderr) goes to a file, never to an unread pipe that could fill up and
block it; a failure shows the log's tail."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from devtools.ports import free_port


class BemsRun:
    def __init__(self, site: Path, db: Path, *extra: str):
        self.log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bems", "run", "--db", str(db), "--site", str(site),
             "--bacnet-port", str(free_port()), *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True)

    def tail(self) -> str:
        self.log.seek(0)
        return self.log.read()[-4000:]

    def __enter__(self) -> "BemsRun":
        line = self.proc.stdout.readline()
        if not line.startswith("running"):
            self.proc.kill()
            raise AssertionError(f"bems run did not start: {line!r}\n{self.tail()}")
        return self

    def stop(self, within_s: float = 60, to_a_worker_thread: bool = False) -> str:
        """SIGTERM; what it printed after starting. Fails unless it stops cleanly in time.
        `to_a_worker_thread`: the signal goes to one of its other threads (as the kernel may
        choose), not the main one."""
        if to_a_worker_thread:
            import ctypes
            import os

            tids = sorted(int(t) for t in os.listdir(f"/proc/{self.proc.pid}/task"))
            worker = next(t for t in tids if t != self.proc.pid)
            if ctypes.CDLL(None, use_errno=True).tgkill(self.proc.pid, worker,
                                                       signal.SIGTERM) != 0:
                raise OSError(ctypes.get_errno(), "tgkill failed")
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(within_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"bems run did not stop within {within_s:g} s of SIGTERM; "
                                 f"its log:\n{self.tail()}") from None
        out = self.proc.stdout.read()
        assert code == 0, f"bems run exited {code}:\n{self.tail()}"
        return out

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()
        self.log.close()


_HOLDER = """
import json, sys, time
from bems.config import load_site
from bems.control import Writer
from bems.intents import WriteIntent
from bems.storage import Store
from connectors.bacnet.gateway import BacnetGateway
site = load_site(sys.argv[2])
gw = BacnetGateway(port=int(sys.argv[3])).start()
w = Writer(site, gw, Store(sys.argv[1]))
for pid, v in json.loads(sys.argv[4]):
    assert w.apply(WriteIntent(pid, v, "held by a process about to die")).outcome == "done"
print("holding", flush=True)
time.sleep(600)
"""


class Holder:
    """A BEMS process that writes `writes` [(point, value)] through the one writer, says
    "holding", and is then killed with SIGKILL: what a crash leaves in the ledger."""

    def __init__(self, site: Path, db: Path, writes: list[tuple[str, float]]):
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db), str(site),
                                      str(free_port()), json.dumps(writes)],
                                     stdout=subprocess.PIPE, text=True)

    def __enter__(self) -> "Holder":
        assert self.proc.stdout.readline().strip() == "holding"
        return self

    def crash(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()
