"""`bems portfolio ingest`: take every centre's messages from the broker into PostgreSQL.

It subscribes with QoS 1 to ``bems/v1/+/<kind>`` on a persistent MQTT 5 session of its own (its
client id is its user name, which the broker enforces): not a shared subscription, which any
centre could join with its own credential and so make the broker drop the messages it hands to
it, and whose queue a restarting broker lost. The broker keeps what arrives while the ingest
is away. Several ingests split the centres between them (`partition=(k, n)`: each takes the
centres whose id hashes to k, and acknowledges the rest to the broker unread). A message is
acknowledged to the broker only after the batch it belongs to is committed. Each batch:

1. meters each centre: beyond its rate (messages and bytes per second, with a burst) a message
   is dropped unread and counted (`rate`); the centre sends it again, as it does everything
   the city has not confirmed;
2. checks every message against the schema (`bems.portfolio.schema.decode`, with the city's
   clock: nothing stamped more than a day ahead, no readings older than the retention): a
   message that breaks it is counted in `dropped` by reason and, when its envelope (its topic's
   site, box and seq) can be read, quarantined with the reason and recorded as handled, so it
   never holds up that centre's confirmations;
3. records (site, box, seq): a message already taken (a replay) is skipped whole;
4. writes what the new ones carry, readings deduplicated on (site, point, t). If PostgreSQL
   refuses the batch while the database itself is fine, each message is written on its own
   and the one it refuses is quarantined: one poison message never stops the city;
5. confirms to each site, on ``bems/v1/<site>/ack``, how far its outbox is handled without a
   gap: only then does the site forget those messages.

Confirmed messages are pruned from `messages` after an hour (`prune_messages`).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
import zlib
from collections import Counter
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bems.portfolio.schema import (ACK, KINDS, PREFIX, Message, PayloadError, decode,
                                   encode_ack, envelope, topic)
from city.store import CityStore
from connectors.mqtt.client import make_client

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


def _utc(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, UTC)


class Bucket:
    """A token bucket: `rate` per second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.level, self.at = burst, time.monotonic()

    def take(self, n: float) -> bool:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level < n:
            return False
        self.level -= n
        return True


# per centre: far above what one sends (a message per device a minute; a replay after a
# day offline is a few thousand), far below a flood
MSG_RATE, MSG_BURST = 200.0, 20_000.0
BYTE_RATE, BYTE_BURST = 1e6, 64e6
PRUNE_EVERY_S = 60.0


def _partition_of(site: str, n: int) -> int:
    return zlib.crc32(site.encode()) % n


class Ingest:
    def __init__(self, dsn: str, broker: str, *, client_id: str | None = None,
                 username: str | None = None, password: str | None = None,
                 ca_file=None, cert_file=None, key_file=None, batch: int = 2000,
                 linger_s: float = 0.2, partition: tuple[int, int] = (0, 1),
                 clock: Callable[[], dt.datetime] | None = None,
                 keep_messages: dt.timedelta = dt.timedelta(hours=1)):
        self.dsn, self.broker = dsn, broker
        # the broker takes the user name as the client id; the same here, for brokers that
        # do not (each ingest has a user name of its own: ingest, ingest-2, ...)
        self.client_id = client_id or username or "ingest"
        if not (isinstance(partition, tuple) and len(partition) == 2
                and 0 <= partition[0] < partition[1] <= 64):
            raise ValueError("partition is (k, n) with 0 <= k < n <= 64")
        self.partition = partition
        self.clock = clock or (lambda: dt.datetime.now(UTC))
        self.keep_messages = keep_messages
        self._buckets: dict[str, tuple[Bucket, Bucket]] = {}
        self._pruned_at = 0.0
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
        self.quarantined = 0
        self.elsewhere = 0  # other partitions' messages, acknowledged unread
        self.pruned = 0
        self.on_batch: Callable[[list[Message]], None] | None = None  # the benchmark's probe

    # --- MQTT -----------------------------------------------------------------------------

    def _connect_loop(self) -> None:
        pause = 0.2
        while not self._stop.is_set():
            gone = threading.Event()
            try:
                c, host, port = make_client(self.broker, self.client_id, protocol=mqtt.MQTTv5,
                                            manual_ack=True, **self.auth)
            except (OSError, ValueError) as err:  # a CA file gone: said, and tried again
                log.warning("ingest: %s", err)
                if self._stop.wait(pause):
                    break
                pause = min(30.0, pause * 2)
                continue

            def on_connect(client, _u, _f, reason, _p):
                if reason.is_failure:
                    log.warning("ingest: broker refused: %s", reason)
                    gone.set()
                    return
                client.subscribe([(f"{PREFIX}/+/{kind}", 1) for kind in KINDS if kind != ACK])
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

    def _admit(self, site: str, size: int) -> bool:
        b = self._buckets.get(site)
        if b is None:
            b = self._buckets[site] = (Bucket(MSG_RATE, MSG_BURST), Bucket(BYTE_RATE, BYTE_BURST))
        return b[0].take(1) and b[1].take(size)

    def _sort(self, items: list, now: int) -> tuple[list[Message], list[tuple], Counter, str]:
        """The batch's messages: (decoded, to quarantine, refused by reason, last bad topic)."""
        good: list[Message] = []
        quarantine: list[tuple] = []
        refused: Counter = Counter()
        last_bad = None
        k, n = self.partition
        for t, payload, _mid, _qos, _c in items:
            parts = t.split("/")
            site = parts[2] if len(parts) == 4 else ""
            if n > 1 and _partition_of(site, n) != k:
                self.elsewhere += 1
                continue
            if not self._admit(site, len(payload)):
                refused["rate"] += 1
                last_bad = t
                continue
            try:
                good.append(decode(t, payload, now))
            except PayloadError as err:
                refused[err.code] += 1
                last_bad = t
                env = envelope(t, payload)
                if env is not None:
                    quarantine.append((*env, parts[3], f"schema: {err}", len(payload),
                                       payload[:200].decode("utf-8", "replace")))
        return good, quarantine, refused, last_bad

    def _write(self, store: CityStore, items: list) -> None:
        good, quarantine, refused, last_bad = self._sort(items, int(self.clock().timestamp()))
        batch = list(good)
        boxes = {(m.site, m.box) for m in good} | {(q[0], q[1]) for q in quarantine}
        marks: dict = {}
        while True:
            try:
                with store.conn.transaction():
                    self._store(store, good)
                    self.quarantined += store.quarantine(quarantine)
                    if refused:
                        store.count_dropped(refused, last_bad)
                with store.conn.transaction():
                    marks = store.confirm(boxes)
                break
            except Exception as err:  # noqa: BLE001 - the database restarts, a poison message
                store._partitions.clear()  # what this transaction made is gone with it
                if self._alive(store):
                    # the database is fine: something in the batch is what it refuses
                    log.warning("ingest: batch refused (%s); message by message",
                                str(err)[:200])
                    try:
                        good, more = self._one_by_one(store, good)
                    except Exception as again:  # noqa: BLE001 - it went away meanwhile
                        log.warning("ingest: %s", str(again)[:200])
                        continue
                    quarantine += more
                    continue
                log.warning("ingest: batch not written (%s); again in 1 s", str(err)[:200])
                if self._stop.wait(1.0) and not self.connected.is_set():
                    return  # not acknowledged: the broker sends it again
                try:
                    store.close()
                except Exception:  # noqa: BLE001
                    pass
                try:
                    store.__init__(self.dsn)
                except Exception as gone:  # noqa: BLE001 - still away: next round
                    log.warning("ingest: database unreachable: %s", str(gone)[:200])
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
            held = {(q[0], q[1], q[2]) for q in quarantine}
            self.on_batch([m for m in batch if (m.site, m.box, m.seq) not in held])
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            try:
                for _ in range(20):  # in short transactions, so batches do not wait long
                    with store.conn.transaction():
                        n = store.prune_messages(self.keep_messages, 50_000)
                    self.pruned += n
                    if n < 50_000:
                        break
            except Exception as err:  # noqa: BLE001 - next time
                log.warning("ingest: pruning failed: %s", str(err)[:200])

    @staticmethod
    def _alive(store: CityStore) -> bool:
        try:
            store.conn.rollback()
            store.conn.execute("SELECT 1").fetchone()
            store.conn.rollback()
            return True
        except Exception:  # noqa: BLE001
            return False

    def _one_by_one(self, store: CityStore, msgs: list[Message]
                    ) -> tuple[list[Message], list[tuple]]:
        """Each message in a transaction of its own; the ones PostgreSQL refuses come back
        to be quarantined (and the rest, written now, are replays for the batch's retry)."""
        bad: list[tuple] = []
        for m in msgs:
            try:
                with store.conn.transaction():
                    self._store(store, [m])
            except Exception as err:  # noqa: BLE001
                store._partitions.clear()
                if not self._alive(store):
                    raise
                log.warning("ingest: %s/%s seq %d quarantined: %s", m.site, m.kind, m.seq,
                            str(err)[:200])
                bad.append((m.site, m.box, m.seq, m.kind, f"store: {str(err)[:160]}", 0,
                            repr(m.body)[:200]))
        return [], bad

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
                "dropped": dict(self.dropped), "quarantined": self.quarantined,
                "pruned": self.pruned, "queued": self.inbox.qsize()}
