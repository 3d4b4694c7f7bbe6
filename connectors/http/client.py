"""One bounded HTTP GET.

`urlopen(timeout=…)` bounds each read, not the request: a server that sends a byte every two
seconds keeps it going for hours (it held a runtime's stop, and its writes, behind a weather
fetch). Here a watchdog shuts the socket at the deadline, whatever the request is doing
(connecting, sending, reading headers, reading the body), so the whole request ends in time.
The body is read up to a size limit. Redirects are followed only within the same origin
(scheme, host and port): a provider cannot send BEMS to an address inside the agency's
network, to another host, or to another scheme (ftp://, file://).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from urllib.parse import urljoin, urlsplit

from bems.errors import BemsError

REDIRECTS = (301, 302, 303, 307, 308)
_active: set = set()  # the watchdogs' abort functions of the requests under way
_active_lock = threading.Lock()


def abort_all() -> int:
    """End every request under way now (a process that stops does not wait for a provider);
    returns how many there were."""
    with _active_lock:
        aborts = list(_active)
    for abort in aborts:
        abort()
    return len(aborts)


class HttpError(BemsError):
    """The request failed: unreachable, too slow, too big, an HTTP error, a redirect away."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _origin(url: str) -> tuple[str, str, int]:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise HttpError(f"{url[:80]!r} is not an http:// or https:// address")
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError:
        raise HttpError(f"{url[:80]!r} has no valid port") from None
    return u.scheme, u.hostname.lower(), port


def get(url: str, deadline_s: float, max_bytes: int, headers: dict | None = None,
        max_redirects: int = 3) -> bytes:
    """The body of a 200 answer to GET url, within `deadline_s` seconds in all and at most
    `max_bytes` long; raises HttpError otherwise."""
    start = time.monotonic()
    origin = _origin(url)
    for _ in range(max_redirects + 1):
        left = deadline_s - (time.monotonic() - start)
        if left <= 0:
            break
        status, location, body = _once(url, left, max_bytes, headers or {}, deadline_s)
        if status not in REDIRECTS:
            if status != 200:
                raise HttpError(f"answered HTTP {status}", status)
            return body
        target = urljoin(url, location or "")
        try:
            same = _origin(target) == origin
        except HttpError:
            same = False
        if not same:
            raise HttpError(f"redirected to {target[:80]!r}, another address: not followed",
                            status)
        url = target
    else:
        raise HttpError(f"more than {max_redirects} redirects")
    raise HttpError(f"no whole answer within {deadline_s:g} s")


def _once(url: str, seconds: float, max_bytes: int, headers: dict,
          deadline_s: float) -> tuple[int, str | None, bytes]:
    scheme, host, port = _origin(url)
    u = urlsplit(url)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    if scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=seconds, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=seconds)
    expired = threading.Event()

    def abort() -> None:  # from the watchdog's thread: unblocks whatever the request waits on
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(seconds, abort)
    watchdog.daemon = True
    watchdog.start()
    with _active_lock:
        _active.add(abort)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        if resp.status in REDIRECTS:
            return resp.status, resp.getheader("Location"), b""
        body = resp.read(max_bytes + 1) if resp.status == 200 else b""
        if expired.is_set():
            raise HttpError(f"no whole answer within {deadline_s:g} s (or stopped)")
        if len(body) > max_bytes:
            raise HttpError(f"answer larger than {max_bytes} bytes")
        return resp.status, None, body
    except HttpError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set():
            raise HttpError(f"no whole answer within {deadline_s:g} s (or stopped)") from None
        raise HttpError(f"unreachable: {str(exc)[:160] or type(exc).__name__}") from None
    finally:
        watchdog.cancel()
        with _active_lock:
            _active.discard(abort)
        conn.close()
