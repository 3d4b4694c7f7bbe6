"""Drain the site's outbox to the broker: QoS 1, in sequence order, a message marked sent only
when the broker has acknowledged it.

One thread owns the connection. Each connection is a new client, so nothing the last one had
in flight is resent behind our back; after any break the thread starts again from the oldest
unacknowledged row, in order (the receiver drops a sequence number it already has). A broker
that is down, refuses the credential or fails TLS is retried with a growing pause (1 s … 60 s);
the outbox meanwhile keeps everything.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt

from bems.portfolio.schema import VERSION, encode, topic
from bems.site import Portfolio
from bems.storage import Store
from connectors.mqtt.client import make_client

log = logging.getLogger(__name__)
WINDOW = 500  # messages in flight before waiting for acknowledgements


class Publisher:
    def __init__(self, cfg: Portfolio, db: Path, timezone: str = "Asia/Ho_Chi_Minh",
                 clock: Callable[[], dt.datetime] | None = None, window: int = WINDOW):
        self.cfg, self.db, self.tz = cfg, db, timezone
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.window = window
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._inflight: OrderedDict[int, int] = OrderedDict()  # mid → seq
        self._acked: list[int] = []
        self._early: dict[int, bool] = {}
        self._connected = threading.Event()
        self.sent = 0  # acknowledged by the broker, this process
        self.connects = 0
        self.last_error: str | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="portfolio-publisher",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New rows are in the outbox."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # --- the connection thread ------------------------------------------------------------

    def _run(self) -> None:
        store = Store(self.db, self.tz)
        pause = 1.0
        try:
            while not self._stop.is_set():
                try:
                    if self._session(store):
                        pause = 1.0
                except Exception as err:  # noqa: BLE001 - the link must come back by itself
                    self.last_error = f"{type(err).__name__}: {err}"[:300]
                    log.warning("portfolio: %s", self.last_error)
                self._connected.clear()
                if self._stop.wait(pause):
                    break
                pause = min(60.0, pause * 2)
        finally:
            store.close()

    def _session(self, store: Store) -> bool:
        cfg = self.cfg
        client, host, port = make_client(
            cfg.broker, f"bems-{cfg.site_id}", username=cfg.username or cfg.site_id,
            password=cfg.password(), ca_file=cfg.ca_file, cert_file=cfg.cert_file,
            key_file=cfg.key_file)
        gone = threading.Event()
        refused: list[str] = []

        def on_connect(_c, _u, _f, reason, _p):
            if reason.is_failure:
                refused.append(str(reason))
                gone.set()
            else:
                self._connected.set()
                self._wake.set()

        def on_disconnect(_c, _u, _f, reason, _p):
            gone.set()
            self._wake.set()

        def on_publish(_c, _u, mid, reason, _p):
            with self._lock:
                seq = self._inflight.pop(mid, None)
                if seq is None:  # acknowledged before publish() returned its mid
                    self._early[mid] = not reason.is_failure
                elif not reason.is_failure:
                    self._acked.append(seq)
            self._wake.set()

        client.on_connect, client.on_disconnect = on_connect, on_disconnect
        client.on_publish = on_publish
        with self._lock:
            self._inflight.clear()
            self._acked.clear()
            self._early.clear()
        client.connect(host, port, keepalive=30)
        client.loop_start()
        try:
            deadline = time.monotonic() + 15
            while not (self._connected.is_set() or gone.is_set() or self._stop.is_set()):
                if time.monotonic() > deadline:
                    raise TimeoutError("no CONNACK from the broker")
                time.sleep(0.02)
            if refused:
                raise ConnectionRefusedError(f"broker refused: {refused[0]}")
            self.connects += 1
            self.last_error = None
            after = 0  # the highest seq handed to this connection
            self._box = store.outbox_id()
            while not (gone.is_set() or self._stop.is_set()):
                self._commit(store)
                with self._lock:
                    room = self.window - len(self._inflight)
                rows = store.unsent(after, min(room, 500)) if room > 0 else []
                for seq, kind, body, created in rows:
                    payload = self._payload(seq, kind, body, created)
                    # not under our lock: paho calls on_publish holding its own
                    info = client.publish(topic(cfg.site_id, kind), payload, qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        raise ConnectionError(mqtt.error_string(info.rc))
                    with self._lock:
                        early = self._early.pop(info.mid, None)
                        if early is None:
                            self._inflight[info.mid] = seq
                        elif early:
                            self._acked.append(seq)
                    after = seq
                if not rows:
                    self._wake.wait(0.5)
                    self._wake.clear()
            if self._stop.is_set():  # a short grace for what is in flight
                end = time.monotonic() + 2
                while self._inflight and time.monotonic() < end and not gone.is_set():
                    time.sleep(0.02)
            self._commit(store)
            return True
        finally:
            client.disconnect()
            client.loop_stop()
            self._commit(store)

    def _commit(self, store: Store) -> None:
        with self._lock:
            acked, self._acked = self._acked, []
        if acked:
            store.mark_sent(acked, self.clock())
            self.sent += len(acked)

    def _payload(self, seq: int, kind: str, body: str, created: int) -> bytes:
        msg = {"v": VERSION, "site": self.cfg.site_id, "box": self._box, "seq": seq,
               "sent": created}
        msg.update(json.loads(body))
        return encode(msg)
