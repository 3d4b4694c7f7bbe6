"""The production HTTP server for the UI: cheroot (CherryPy's pure-Python, multi-threaded WSGI
server), with HTTPS when the site file gives a certificate (`[web] certificate, private_key`).
Werkzeug's development server is never used to serve the UI."""

from __future__ import annotations

import threading
from pathlib import Path

from cheroot import wsgi


class WebServer:
    def __init__(self, app, host: str, port: int, certificate: Path | None = None,
                 private_key: Path | None = None, threads: int = 8):
        self.server = wsgi.Server((host, port), app, numthreads=threads,
                                  server_name="bems", shutdown_timeout=5)
        self.scheme = "http"
        if certificate is not None:
            from cheroot.ssl.builtin import BuiltinSSLAdapter

            self.server.ssl_adapter = BuiltinSSLAdapter(str(certificate), str(private_key))
            self.scheme = "https"
        self.host, self.port = host, port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"{self.scheme}://{host}:{self.server.bind_addr[1]}/"

    def start(self) -> "WebServer":
        self.server.prepare()  # binds now: a taken port is an error here, not in a thread
        self._thread = threading.Thread(target=self.server.serve, name="web", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        if self._thread is not None:
            self._thread.join(10)

    def serve_forever(self) -> None:
        self.server.prepare()
        try:
            self.server.serve()
        finally:
            self.server.stop()
