"""Drain the site's outbox to the city: QoS 1, in sequence order; a message is marked sent only
when the city confirms it is stored (``bems/v1/<site>/ack``), not merely when the broker has
it, so a broker that restarts or crashes costs a resend, never a message.

One thread owns the connection. Each connection is a new client, so nothing the last one had
in flight is resent behind our back; after any break the thread starts again from the oldest
unconfirmed row, in order (the city drops a sequence number it already has), that row alone
until the city confirms it (so nothing streams into a broker that cannot deliver yet), then at
most `AHEAD` messages beyond what the city has confirmed (a centre replaying an outage feeds
the city's queue at the broker without flooding it). While connected,
if nothing new is confirmed for `RESEND_S` and nothing is in flight, everything unconfirmed is
sent again (a confirmation, or what it confirms, was lost); while resends bring no progress the
wait doubles (to `RESEND_MAX_S`), so a city that is slow to confirm, catching up after an
outage, is not buried under every centre's resends. A broker that is down, refuses the
credential or fails TLS is retried with a growing, jittered pause (0.5 s … 60 s: a broker
that restarts is back within a second or two, and every batch waits for it); the outbox
meanwhile keeps everything.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt

from bems.portfolio.schema import ACK, VERSION, decode_ack, encode, topic
from bems.site import Portfolio
from bems.storage import Store
from connectors.mqtt.client import make_client

log = logging.getLogger(__name__)
WINDOW = 500  # messages the broker has not acknowledged yet
# messages sent beyond what the city has confirmed: a centre replaying a long outage keeps the
# city's queue at the broker fed without filling it (what a broker drops for want of room comes
# again only after a stall, and then everything unconfirmed is sent again)
AHEAD = 1000
RESEND_S = 15.0
RESEND_MAX_S = 240.0
FIRST_PAUSE_S = 0.5  # the first retry after a break (jittered 0.5-1.5x), doubling to 60 s


class Publisher:
    def __init__(self, cfg: Portfolio, db: Path, timezone: str = "Asia/Ho_Chi_Minh",
                 clock: Callable[[], dt.datetime] | None = None, window: int = WINDOW,
                 resend_s: float = RESEND_S, ahead: int = AHEAD):
        self.cfg, self.db, self.tz = cfg, db, timezone
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.window, self.resend_s, self.ahead = window, resend_s, ahead
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._inflight: set[int] = set()  # mids the broker has not acknowledged
        self._early: set[int] = set()  # acknowledged before publish() returned the mid
        self._confirmed = 0  # the city has everything of our outbox up to here
        self._committed = 0  # marked sent in the outbox up to here
        # the highest seq this process handed to the broker: a confirmation is believed up to
        # it, never beyond (a forged or stale "upto" cannot mark unsent rows sent)
        self._published_max = 0
        self._box: str | None = None
        self._connected = threading.Event()
        self.sent = 0  # confirmed by the city, this process
        self.published = 0  # handed to the broker, resends included
        self.connects = 0
        self.ignored_acks = 0  # confirmations of more than was sent (forged, or stale)
        self.resends = 0  # times everything unconfirmed was sent again
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
        pause = FIRST_PAUSE_S
        try:
            while not self._stop.is_set():
                try:
                    if self._session(store):
                        pause = FIRST_PAUSE_S
                except Exception as err:  # noqa: BLE001 - the link must come back by itself
                    self.last_error = f"{type(err).__name__}: {err}"[:300]
                    log.warning("portfolio: %s", self.last_error)
                self._connected.clear()
                # jittered: after a broker restart hundreds of centres must not come back in
                # the same second
                if self._stop.wait(pause * random.uniform(0.5, 1.5)):
                    break
                pause = min(60.0, pause * 2)
        finally:
            store.close()

    def _session(self, store: Store) -> bool:
        cfg = self.cfg
        # the broker takes the user name as the client id (use_username_as_clientid): one
        # client per centre, and no centre can take another's (or the ingest's) session
        client, host, port = make_client(
            cfg.broker, cfg.site_id, username=cfg.username or cfg.site_id,
            password=cfg.password(), ca_file=cfg.ca_file, cert_file=cfg.cert_file,
            key_file=cfg.key_file)
        gone = threading.Event()
        refused: list[str] = []
        self._box = store.outbox_id()

        def on_connect(c, _u, _f, reason, _p):
            if reason.is_failure:
                refused.append(str(reason))
                gone.set()
            else:
                c.subscribe(topic(cfg.site_id, ACK), qos=1)
                self._connected.set()
                self._wake.set()

        def on_disconnect(_c, _u, _f, reason, _p):
            gone.set()
            self._wake.set()

        def on_publish(_c, _u, mid, reason, _p):
            with self._lock:
                if mid in self._inflight:
                    self._inflight.discard(mid)
                else:
                    self._early.add(mid)
            self._wake.set()

        def on_message(_c, _u, msg):
            ack = decode_ack(msg.payload)
            if ack is not None and ack[0] == self._box:
                with self._lock:
                    upto = min(ack[1], self._published_max)
                    if ack[1] > self._published_max:
                        self.ignored_acks += 1
                    self._confirmed = max(self._confirmed, upto)
                self._wake.set()

        client.on_connect, client.on_disconnect = on_connect, on_disconnect
        client.on_publish, client.on_message = on_publish, on_message
        with self._lock:
            self._inflight.clear()
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
            progress = time.monotonic()
            wait = self.resend_s  # doubles while resends bring no confirmation
            # the first message goes alone, and the rest only once the city confirmed it: a
            # broker that has just restarted may not have the city's subscription back yet,
            # and what it drops would come again later, out of order
            probe: int | None = None
            while not (gone.is_set() or self._stop.is_set()):
                if self._commit(store):
                    progress, wait = time.monotonic(), self.resend_s
                with self._lock:
                    room = self.window - len(self._inflight)
                    idle = not self._inflight
                    confirmed = self._confirmed
                if probe is not None and confirmed >= probe:
                    probe = -1  # the way to the city is open
                if probe is None or probe == -1:
                    # refilled a hundred at a time (or when nothing is in flight), not one
                    # message per broker acknowledgement
                    limit = 1 if probe is None else (
                        min(room, 500) if room >= min(100, self.window) or idle else 0)
                    # and no further than `ahead` beyond the city's confirmation
                    limit = max(0, min(limit, self.ahead - max(0, after - confirmed)))
                else:
                    limit = 0  # waiting for the probe's confirmation
                rows = store.unsent(after, limit) if room > 0 and limit else []
                if rows and probe is None:
                    probe = rows[0][0]
                if rows and self._box is None:  # made with the outbox's first message
                    self._box = store.outbox_id()
                for seq, kind, body, created in rows:
                    payload = self._payload(seq, kind, body, created)
                    with self._lock:
                        self._published_max = max(self._published_max, seq)
                    # not under our lock: paho calls on_publish holding its own
                    info = client.publish(topic(cfg.site_id, kind), payload, qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        raise ConnectionError(mqtt.error_string(info.rc))
                    with self._lock:
                        if info.mid in self._early:
                            self._early.discard(info.mid)
                        else:
                            self._inflight.add(info.mid)
                    after = seq
                    self.published += 1
                if rows:
                    continue
                if idle and after and time.monotonic() - progress > wait \
                        and store.unsent(0, 1):
                    log.info("portfolio: nothing confirmed for %.0f s; sending again", wait)
                    after, progress = 0, time.monotonic()
                    wait = min(RESEND_MAX_S, wait * 2)
                    self.resends += 1
                    if probe is not None and probe != -1:
                        probe = None  # the probe again
                    continue
                self._wake.wait(0.5)
                self._wake.clear()
            if self._stop.is_set():  # a short grace for the confirmations on their way
                end = time.monotonic() + 2
                while time.monotonic() < end and not gone.is_set() and store.unsent(0, 1) \
                        and not self._commit(store):
                    time.sleep(0.05)
            return True
        finally:
            client.disconnect()
            client.loop_stop()
            self._commit(store)

    def _commit(self, store: Store) -> int:
        """Mark sent what the city confirmed since the last time; how many rows that was (the
        outbox is not scanned again while nothing new is confirmed: the loop runs at every
        broker acknowledgement)."""
        with self._lock:
            upto = self._confirmed
        if upto <= self._committed:
            return 0
        n = store.confirm_sent(upto, self.clock(), after=self._committed)
        self._committed = upto
        self.sent += n
        return n

    def _payload(self, seq: int, kind: str, body: str, created: int) -> bytes:
        msg = {"v": VERSION, "site": self.cfg.site_id, "box": self._box, "seq": seq,
               "sent": created}
        msg.update(json.loads(body))
        return encode(msg)
