"""The other BACnet implementation: bacpypes 0.18 in its own virtual environment, installed
from PyPI with hashes (tests/interop/requirements.txt) into .cache/interop/ once, and a
controller served by it (tests/interop/legacy_device.py)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

HERE = Path(__file__).parent / "interop"
ROOT = Path(__file__).parent.parent


def python() -> Path:
    """The interop environment's Python, made if missing or its requirements changed."""
    req = HERE / "requirements.txt"
    tag = hashlib.sha256(req.read_bytes()).hexdigest()[:12]
    env = ROOT / ".cache" / "interop" / f"bacpypes-{tag}"
    exe = env / "bin" / "python"
    if not (env / ".complete").exists():
        venv.EnvBuilder(clear=True, with_pip=True).create(env)
        r = subprocess.run([str(exe), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", "--require-hashes", "--no-deps",
                            "-r", str(req)], capture_output=True, text=True, timeout=600)
        if r.returncode:
            raise RuntimeError(f"installing bacpypes 0.18 for the interop tests failed:\n"
                               f"{r.stdout[-2000:]}{r.stderr[-2000:]}")
        (env / ".complete").write_text("ok\n")
    return exe


class LegacyDevice:
    """A bacpypes 0.18 controller on HOST:PORT, as a child process."""

    def __init__(self, address: str, instance: int, objects: int = 1000):
        self.address, self.instance = address, instance
        self.log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # never an unread pipe
        self.proc = subprocess.Popen([str(python()), str(HERE / "legacy_device.py"), address,
                                      str(instance), str(objects)],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.stop()
            raise RuntimeError(f"the bacpypes 0.18 device did not start: {line!r}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()
        self.log.close()


if __name__ == "__main__":
    print(python(), file=sys.stderr)
