"""Real PostgreSQL and Mosquitto for the portfolio tests, started and stopped by the tests.

PostgreSQL runs as its own unprivileged user (`postgres`, made by Debian's package) when the
tests run as root, in a data folder of the test's own, on a free port on 127.0.0.1. Mosquitto
runs with the configuration `bems portfolio broker-config` writes: TLS with a CA made here by
openssl, a credential per site, the ACL, persistence.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from city import broker as broker_config
from devtools.ports import free_port


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: apt-get install postgresql")
    return path


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    pwd.getpwnam("postgres")
    return ["runuser", "-u", "postgres", "--"]


def _wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}{_log_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def _log_tail(log: Path | None) -> str:
    """The last lines of the log a service wrote, for the error."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-5:] if log else []
    except OSError:
        lines = []
    return (": " + " | ".join(lines)) if lines else ""


def _own_dir(prefix: str) -> Path:
    """A folder the service's own user can reach (pytest's are private to root)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    return d


class Postgres:
    def __init__(self, folder: Path | None = None):
        self.folder = folder or _own_dir("bems-pg-")
        self.data = self.folder / "pgdata"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=bems dbname=bems"

    def start(self) -> "Postgres":
        self.data.mkdir(parents=True)
        sock = self.folder / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in (self.folder, self.data, sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(self.folder, 0o755)
        run = _as_postgres()
        subprocess.run(run + [_pg_bin("initdb"), "-D", str(self.data), "-U", "bems", "-A",
                              "trust", "-E", "UTF8", "--no-sync"], check=True,
                       capture_output=True, timeout=120)
        self.proc = subprocess.Popen(
            run + [_pg_bin("postgres"), "-D", str(self.data), "-p", str(self.port),
                   "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sock}",
                   "-c", "fsync=off", "-c", "synchronous_commit=off",
                   "-c", "full_page_writes=off", "-c", "shared_buffers=256MB",
                   "-c", "max_wal_size=2GB"],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "postgres.log", "ab"))
        _wait_port(self.port, 60, self.proc, self.folder / "postgres.log")
        for _ in range(100):
            r = subprocess.run(run + [_pg_bin("createdb"), "-h", "127.0.0.1", "-p",
                                      str(self.port), "-U", "bems", "bems"],
                               capture_output=True, timeout=30)
            if r.returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError(r.stderr.decode())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # fast shutdown (runuser does not pass a signal on, so pg_ctl tells the server)
            subprocess.run(_as_postgres() + [_pg_bin("pg_ctl"), "stop", "-D", str(self.data),
                                             "-m", "fast", "-w"], capture_output=True,
                           timeout=60)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def make_pki(folder: Path | None = None) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost (openssl), in a folder the
    broker's user can read."""
    folder = folder or _own_dir("bems-pki-")
    ca_key, ca = folder / "ca.key", folder / "ca.pem"
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.pem"
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
        str(ca), "-days", "2", "-subj", "/CN=BEMS test city CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj",
        "/CN=localhost")
    ssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    for p in (key, ca_key):
        os.chmod(p, 0o644)  # the broker drops root for its own user and must read it
    return {"ca": ca, "cert": cert, "key": key}


class Mosquitto:
    def __init__(self, pki: dict[str, Path], ingest_users=("ingest",),
                 max_queued_bytes: int = 1 << 30):
        self.folder = _own_dir("bems-mqtt-")
        self.port = free_port()
        self.conf = broker_config.write_config(
            self.folder, port=self.port, cafile=pki["ca"], certfile=pki["cert"], keyfile=pki["key"],
            ingest_users=list(ingest_users), max_queued_bytes=max_queued_bytes)
        self.proc: subprocess.Popen | None = None
        self.url = f"mqtts://127.0.0.1:{self.port}"
        self.ca = pki["ca"]

    def add_user(self, user: str, password: str) -> None:
        broker_config.set_password(self.folder, user, password)

    def rss_kb(self) -> int:
        """The broker's resident memory."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def start(self) -> "Mosquitto":
        # as root, mosquitto runs as its own user: it must read the config and write its data
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("mosquitto")
                for p in [self.folder, *self.folder.rglob("*")]:
                    os.chown(p, pw.pw_uid, pw.pw_gid)
            except KeyError:
                pass
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "mosquitto.log", "ab"))
        _wait_port(self.port, 20, self.proc, self.folder / "mosquitto.log")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, down_s: float = 0.5) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def crash(self, forget: bool = False, down_s: float = 0.5) -> None:
        """SIGKILL (no persistence saved); with `forget`, its persistence file goes too."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if forget:
            for f in (self.folder / "data").glob("*"):
                f.unlink()
        time.sleep(down_s)
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
