"""`bems portfolio ingest`: take every centre's messages from the broker into PostgreSQL.

It subscribes with QoS 1 to ``$share/<group>/bems/v1/+/+`` on a persistent MQTT 5 session, so
several ingest processes share the stream and a restart of the ingest or of the broker loses
nothing the broker accepted. A message is acknowledged to the broker only after the batch it
belongs to is committed (or after it was refused and counted). Each batch:

1. checks every message against the schema (`bems.portfolio.schema.decode`): a malformed,
   oversized or mismatched message (a payload whose site id is not its topic's) is counted in
   `dropped` by reason and acknowledged, never retried, never fatal;
2. records (site, box, seq): a message already taken (a replay) is skipped whole;
3. writes what the new ones carry, readings deduplicated on (site, point, t);
4. confirms to each site, on ``bems/v1/<site>/ack``, how far its outbox is stored without a gap:
   only then does the site forget those messages. So nothing is lost even when the broker
   loses what it held (a crash, or a restart that does not bring back a shared subscription).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections import Counter
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bems.portfolio.schema import (ACK, KINDS, PREFIX, Message, PayloadError, decode,
                                   encode_ack, topic)
from city.store import CityStore
from connectors.mqtt.client import make_client

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


def _utc(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, UTC)


class Ingest:
    def __init__(self, dsn: str, broker: str, *, client_id: str = "ingest-1",
                 group: str = "ingest", username: str | None = None, password: str | None = None,
                 ca_file=None, cert_file=None, key_file=None, batch: int = 2000,
                 linger_s: float = 0.2):
        self.dsn, self.broker = dsn, broker
        self.client_id, self.group = client_id, group
        self.auth = dict(username=username, password=password, ca_file=ca_file,
                         cert_file=cert_file, key_file=key_file)
        self.batch, self.linger_s = batch, linger_s
        self.inbox: queue.Queue = queue.Queue(maxsize=20_000)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.client: mqtt.Client | None = None
        self.connected = threading.Event()
        self.taken = 0  # messages written
        self.replays = 0
        self.dropped: Counter = Counter()
        self.readings = 0
        self.on_batch: Callable[[list[Message]], None] | None = None  # the benchmark's probe

    # --- MQTT -----------------------------------------------------------------------------

    def _connect_loop(self) -> None:
        pause = 0.2
        while not self._stop.is_set():
            gone = threading.Event()
            c, host, port = make_client(self.broker, self.client_id, protocol=mqtt.MQTTv5,
                                        manual_ack=True, **self.auth)

            def on_connect(client, _u, _f, reason, _p):
                if reason.is_failure:
                    log.warning("ingest: broker refused: %s", reason)
                    gone.set()
                    return
                client.subscribe([(f"$share/{self.group}/{PREFIX}/+/{kind}", 1)
                                  for kind in KINDS])
                self.connected.set()

            def on_disconnect(_c, _u, _f, _reason, _p):
                self.connected.clear()
                gone.set()

            def on_message(_c, _u, msg):
                self.inbox.put((msg.topic, msg.payload, msg.mid, msg.qos, c))

            c.on_connect, c.on_disconnect, c.on_message = on_connect, on_disconnect, on_message
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 7 * 86400  # the broker keeps our queue a week
            try:
                c.connect(host, port, keepalive=30, clean_start=False, properties=props)
            except OSError as err:
                log.warning("ingest: %s", err)
                if self._stop.wait(pause):
                    break
                pause = min(30.0, pause * 2)
                continue
            pause = 0.2
            self.client = c
            c.loop_start()
            while not gone.is_set() and not self._stop.is_set():
                gone.wait(0.2)
            if self._stop.is_set():
                self.inbox.put(None)  # let the writer finish its batch first
                deadline = time.monotonic() + 10
                while not self._drained.is_set() and time.monotonic() < deadline:
                    time.sleep(0.05)
                c.disconnect()
            c.loop_stop()
            self.connected.clear()
            # back before the centres (they wait 0.5–1.5 s): what they send meets a subscriber
            pause = 0.2 if not self._stop.is_set() else pause
            if self._stop.wait(pause):
                break

    # --- the writer -----------------------------------------------------------------------

    def _writer(self) -> None:
        store = CityStore(self.dsn)
        try:
            while True:
                first = self.inbox.get()
                if first is None:
                    break
                items = [first]
                end = time.monotonic() + self.linger_s
                stop = False
                while len(items) < self.batch:
                    try:
                        it = self.inbox.get(timeout=max(0.0, end - time.monotonic()))
                    except queue.Empty:
                        break
                    if it is None:
                        stop = True
                        break
                    items.append(it)
                self._write(store, items)
                if stop:
                    break
        finally:
            self._drained.set()
            store.close()

    def _write(self, store: CityStore, items: list) -> None:
        good: list[Message] = []
        refused: Counter = Counter()
        last_bad = None
        for t, payload, _mid, _qos, _c in items:
            try:
                good.append(decode(t, payload))
            except PayloadError as err:
                refused[err.code] += 1
                last_bad = t
        boxes = {(m.site, m.box) for m in good}
        while True:
            try:
                with store.conn.transaction():
                    self._store(store, good)
                    if refused:
                        store.count_dropped(refused, last_bad)
                with store.conn.transaction():
                    marks = store.confirm(boxes)
                break
            except Exception as err:  # noqa: BLE001 - the database restarts, a deadlock
                log.warning("ingest: batch not written (%s); again in 1 s", err)
                if self._stop.wait(1.0) and not self.connected.is_set():
                    return  # not acknowledged: the broker sends it again
                store._partitions.clear()  # what this transaction made is gone with it
                try:
                    store.conn.rollback()
                except Exception:  # noqa: BLE001
                    store.close()
                    store.__init__(self.dsn)
        self.dropped.update(refused)
        for _t, _p, mid, qos, c in items:  # in the order received, as MQTT asks
            if qos > 0:
                c.ack(mid, qos)
        # the sites may now forget what is confirmed (lost on the way: they send again and
        # are confirmed again)
        client = self.client
        if client is not None:
            for (site, box), upto in marks.items():
                client.publish(topic(site, ACK), encode_ack(box, upto), qos=1)
        if self.on_batch is not None:
            self.on_batch(good)

    def _store(self, store: CityStore, msgs: list[Message]) -> None:
        new = store.take_messages([(m.site, m.box, m.seq, m.kind, _utc(m.sent))
                                   for m in msgs])
        fresh = [m for m in msgs if (m.site, m.box, m.seq) in new]
        self.replays += len(msgs) - len(fresh)
        # the registry first: energy's daily rollup needs the site's time zone
        for m in sorted((m for m in fresh if m.kind == "site"), key=lambda m: m.site):
            store.upsert_site(m.site, m.body)
        readings, energy = [], []
        newest: dict[str, tuple[int, dt.datetime | None]] = {}
        for m in fresh:
            b = m.body
            last = None
            if m.kind == "readings":
                t0 = b["t0"]
                for point, samples in b["p"].items():
                    for off, v in samples:
                        readings.append((m.site, point, _utc(t0 + off), v))
                        last = max(last or t0 + off, t0 + off)
            elif m.kind == "energy":
                for meter, vals in b["m"].items():
                    for i, v in enumerate(vals):
                        if v is not None:
                            energy.append((m.site, meter, _utc(b["t0"] + i * b["step"]), v))
            elif m.kind == "monthly":
                store.upsert_monthly(m.site, b)
            elif m.kind == "faults":
                store.upsert_faults(m.site, b["faults"])
            elif m.kind == "ledger":
                store.upsert_ledger(m.site, b)
            seq, t = newest.get(m.site, (0, None))
            lt = _utc(last) if last is not None else None
            newest[m.site] = (max(seq, m.seq), max(t, lt) if t and lt else (t or lt))
        self.readings += store.add_readings(readings)
        store.add_energy(energy)
        for site, (seq, t) in sorted(newest.items()):  # one order: no deadlock between ingests
            store.seen(site, seq, t)
        self.taken += len(fresh)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        with CityStore(self.dsn) as s:
            s.migrate()
        self._drained = threading.Event()
        self._threads = [threading.Thread(target=self._writer, name="ingest-writer", daemon=True),
                         threading.Thread(target=self._connect_loop, name="ingest-mqtt",
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        if self._threads:
            self._threads[1].join(20)  # acknowledges what the writer committed, disconnects
            self.inbox.put(None)
            self._threads[0].join(20)

    def stats(self) -> dict:
        return {"taken": self.taken, "replays": self.replays, "readings": self.readings,
                "dropped": dict(self.dropped), "queued": self.inbox.qsize()}
