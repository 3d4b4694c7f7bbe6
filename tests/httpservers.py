"""HTTP peers that misbehave, on loopback, for the connectors' bounded HTTP: a server that
answers a byte at a time (slow enough to last for hours), one that redirects, one that sends
too much. Each runs in a thread of the test and closes every connection when stopped."""

from __future__ import annotations

import socket
import threading
import time


class Peer:
    """A TCP server on 127.0.0.1 (a free port); `handle(conn)` answers each connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopped = threading.Event()
        self.connections: list[socket.socket] = []
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            self.requests.append(conn.recv(65536))
            self.handle(conn)
        except OSError:
            pass

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopped.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self.sock.close()
        for c in self.connections:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Drip(Peer):
    """A 200 answer whose headers and body come a byte every `every_s` seconds, for ever."""

    def __init__(self, every_s: float = 0.5):
        self.every_s = every_s
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        data = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Slow: 1\r\n" * 10_000
        for i in range(len(data)):
            if self.stopped.wait(self.every_s):
                return
            conn.sendall(data[i:i + 1])


class Redirect(Peer):
    """A 302 to `location`."""

    def __init__(self, location: str):
        self.location = location
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + self.location.encode() +
                     b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()


class Reply(Peer):
    """A fixed answer: status and body (a body of `size` bytes when given)."""

    def __init__(self, status: int = 200, body: bytes = b"{}", size: int | None = None):
        self.status, self.body = status, body if size is None else b" " * size
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        head = (f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n").encode()
        conn.sendall(head + self.body)
        conn.close()


def wait_for(cond, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()
