"""Real receivers of BEMS's notifications for tests: an SMTP relay (aiosmtpd, over a socket on
loopback) and an HTTP webhook receiver (the standard library's server), each of which can be
told to fail the way real ones do (refuse, answer 4xx/5xx, hang, answer 10 MB)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devtools.ports import free_port


class Relay:
    """An SMTP relay on 127.0.0.1. `answer`: None (accept) or an SMTP reply such as
    "451 4.3.0 try again later"; `delay_s`: how long it holds each message before answering;
    `password`: if set, AUTH is required (over plain SMTP: loopback only)."""

    def __init__(self, password: str | None = None):
        self.port = free_port()
        self.messages: list[email.message.EmailMessage] = []
        self.answer: str | None = None
        self.delay_s = 0.0
        self.password = password
        self.controller = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        if self.answer:
            return self.answer
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(msg)
        return "250 OK queued"

    def _auth(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        ok = auth_data.login == b"bems" and auth_data.password == self.password.encode()
        return AuthResult(success=ok, handled=False)

    def start(self) -> "Relay":
        from aiosmtpd.controller import Controller

        kw = {}
        if self.password is not None:
            kw = {"authenticator": self._auth, "auth_require_tls": False,
                  "auth_required": True}
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kw)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait_for(self, n: int, timeout_s: float = 10.0) -> list:
        end = time.monotonic() + timeout_s
        while len(self.messages) < n and time.monotonic() < end:
            time.sleep(0.05)
        return self.messages


class HookReceiver:
    """An HTTP server on 127.0.0.1 that keeps every POST. `status`: the answer's code;
    `hang_s`: how long it waits before answering; `answer_bytes`: the answer's size."""

    def __init__(self):
        self.posts: list[dict] = []
        self.status = 200
        self.hang_s = 0.0
        self.answer_bytes = 2
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(min(n, 1 << 20))
                if outer.hang_s:
                    time.sleep(outer.hang_s)
                if 200 <= outer.status < 300:
                    outer.posts.append({"headers": dict(self.headers), "body": body,
                                        "json": json.loads(body)})
                self.send_response(outer.status)
                self.send_header("Content-Length", str(outer.answer_bytes))
                self.end_headers()
                try:
                    chunk = b"x" * 65536
                    left = outer.answer_bytes
                    while left > 0:
                        self.wfile.write(chunk[:left])
                        left -= len(chunk)
                except OSError:  # the client stopped reading: that is the point
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        # checks for shutdown every 50 ms (the default half second made every test's teardown wait)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def start(self) -> "HookReceiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
