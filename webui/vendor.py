"""The browser libraries the UI ships, pinned and checked: `python -m webui.vendor` fetches
each from the npm registry (`npm pack`), checks the tarball's integrity against the pin, and
copies the files the UI uses, with the licence, into webui/static/vendor/. The copied files
are committed, so an install needs neither npm nor the network; this rebuilds them."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).parent / "static" / "vendor"
PINS = {
    # name: (version, npm integrity, files to copy from the package)
    "uplot": ("1.6.32", "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMas"
                        "NuGGzQm/ep3tOkyTxpiQIw==",
              ("dist/uPlot.iife.min.js", "dist/uPlot.min.css", "LICENSE")),
}


def fetch(name: str) -> None:
    version, integrity, files = PINS[name]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=tmp, check=True,
                       capture_output=True, timeout=300)
        tgz = next(Path(tmp).glob("*.tgz"))
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        if digest != integrity:
            raise SystemExit(f"{name}@{version}: integrity {digest} is not the pinned one")
        with tarfile.open(tgz) as t:
            t.extractall(tmp, filter="data")
        out = HERE / name
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy(Path(tmp) / "package" / f, out / Path(f).name)
        (out / "VERSION").write_text(f"{name} {version} {integrity}\n")
    print(f"{name} {version} -> {out}", file=sys.stderr)


if __name__ == "__main__":
    for n in PINS:
        fetch(n)
