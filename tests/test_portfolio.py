"""The city portfolio: the schema and the outbox (fast), then real Mosquitto (TLS, a credential
per site, the ACL) and real PostgreSQL started here: several sites publishing, a broker restart
mid-stream, a site offline and replaying, a site writing under another's topic, malformed
payloads."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest

from bems.portfolio.collect import Collector
from bems.portfolio.schema import (MAX_PAYLOAD, PayloadError, decode, encode, parse_topic,
                                   topic)
from bems.site import Portfolio
from bems.storage import Store
from connectors.mqtt.publisher import Publisher
from tests.synthetic import synthetic_db

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 18, 8, 7, tzinfo=UTC)  # the synthetic store ends at 10:00
NOW_S = int(NOW.timestamp())


def _env(site="hp-01", seq=1, **body):
    return {"v": 1, "site": site, "box": "0123456789abcdef", "seq": seq, "sent": 1_790_000_000,
            **body}


def _readings(**over):
    b = {"dev": "ahu-1", "t0": 1_790_000_000, "res": "raw", "p": {"z1.temp": [[0, 25.5], [60, None]]}}
    b.update(over)
    return b


# --- the schema ---------------------------------------------------------------------------

def test_a_good_message_is_read_back():
    m = decode(topic("hp-01", "readings"), encode(_env(**_readings())))
    assert (m.site, m.kind, m.seq) == ("hp-01", "readings", 1)
    assert m.body["p"]["z1.temp"][1] == [60, None]


@pytest.mark.parametrize("payload, code", [
    (b"not json", "json"),
    (b"\xff\xfe garbage", "json"),
    (b"[1, 2]", "json"),
    (encode(_env(**_readings())).replace(b"25.5", b"NaN"), "number"),
    (encode(_env(**_readings())).replace(b"25.5", b"-Infinity"), "number"),
    (encode(_env(**_readings(p={"x": [[0, 1e300]]}))), "value"),
    (encode(_env(**_readings(p={"x": [[0, True]]}))), "value"),
    (encode(_env(**_readings(p={"x": [[-5, 1.0]]}))), "value"),
    (encode(_env(**_readings(p={"x": "25"}))), "field"),
    (encode(_env(**_readings(p={}))), "field"),
    (encode(_env(**_readings(p={"bad point ☃": [[0, 1.0]]}))), "field"),
    (encode(_env(**_readings(dev=""))), "field"),
    (encode(_env(**_readings(t0=10**12))), "field"),
    (encode(_env(site="hp-02", **_readings())), "site_mismatch"),
    (encode({**_env(**_readings()), "v": 2}), "version"),
    (encode({**_env(**_readings()), "seq": 0}), "envelope"),
    (encode({**_env(**_readings()), "seq": "1"}), "envelope"),
    (encode({**_env(**_readings()), "box": "../../etc"}), "envelope"),
    (encode({k: v for k, v in _env(**_readings()).items() if k != "box"}), "envelope"),
    (b"[" * 100_000 + b"]" * 100_000, "json"),
    (b" " * (MAX_PAYLOAD + 1), "oversized"),
])
def test_malformed_messages_are_refused_with_a_reason(payload, code):
    with pytest.raises(PayloadError) as err:
        decode(topic("hp-01", "readings"), payload)
    assert err.value.code == code


@pytest.mark.parametrize("t", ["bems/v1/hp-01", "bems/v2/hp-01/readings", "bems/v1/HP/readings",
                               "bems/v1/hp-01/secrets", "bems/v1/hp-01/readings/x", "",
                               "bems/v1/" + "a" * 41 + "/site"])
def test_topics_outside_the_layout_are_refused(t):
    with pytest.raises(PayloadError):
        parse_topic(t)


@pytest.mark.parametrize("kind, body", [
    ("energy", {"t0": 1_790_000_000, "step": 900, "m": {"main": [-1.0]}}),
    ("energy", {"t0": 1_790_000_000, "step": 60, "m": {"main": [1.0]}}),
    ("faults", {"faults": [{"id": 1}]}),
    ("ledger", {"day": "2026-13-45x", "writes": 1, "failed": 0, "released": 0, "held": 0,
                "below_floor": 0}),
    ("monthly", {"month": "2026-13", "kwh": 1.0}),
    ("monthly", {"month": "2026-11", "kwh": -5.0}),
    ("site", {"name": "", "timezone": "Asia/Ho_Chi_Minh", "organisation": "", "floor_area_m2": 1e300,
              "staff": 1, "points": 1, "meters": []}),
])
def test_every_kind_checks_its_body(kind, body):
    with pytest.raises(PayloadError):
        decode(topic("hp-01", kind), encode(_env(**body)))


SITE_BODY = {"name": "Trung tâm", "timezone": "Asia/Ho_Chi_Minh", "organisation": "UBND",
             "floor_area_m2": 1000.0, "staff": 10, "points": 3,
             "meters": [{"id": "main", "name": "Tổng", "measures": "main", "parent": None}]}
FAULT = {"id": 1, "rule": "ac_after_hours", "target": "f1.p1", "status": "open",
         "first": 1_790_000_000, "last": 1_790_003_600, "kwh_per_day": 1.0, "vnd_per_day": 2.0}
LEDGER = {"day": "2026-09-22", "writes": 1, "failed": 0, "released": 0, "held": 0,
          "below_floor": 0}
# what the schema once let through and PostgreSQL refused (each stopped the whole city)
POISON = [
    ("site", dict(SITE_BODY, name="Trung\x00tâm")),  # NUL in text
    ("site", dict(SITE_BODY, organisation="x\ud800y")),  # a lone surrogate
    ("site", dict(SITE_BODY, timezone="Mars/Olympus_Mons")),  # an unknown time zone
    ("site", dict(SITE_BODY, meters=[{"id": "main", "name": "a\x00", "measures": "main",
                                      "parent": None}])),
    ("faults", {"faults": [dict(FAULT, target="f1\x00p1")]}),
    ("ledger", dict(LEDGER, day="2026-02-31")),  # no such day
    ("monthly", {"month": "0000-01", "kwh": 1.0}),  # no year 0 in PostgreSQL
]


@pytest.mark.parametrize("kind, body", POISON, ids=[f"{k}-{i}" for i, (k, _) in
                                                   enumerate(POISON)])
def test_what_postgresql_refuses_the_schema_refuses(kind, body):
    with pytest.raises(PayloadError):  # JSON's escapes, as an attacker writes them
        decode(topic("hp-01", kind), json.dumps(_env(**body)).encode())
    decode(topic("hp-01", "site"), encode(_env(**SITE_BODY)))  # the good one passes


def test_times_ahead_of_the_city_are_refused():
    now = 1_790_000_000
    ok = _env(**_readings(t0=now - 3600))
    decode(topic("hp-01", "readings"), encode(ok), now)
    for kind, body, code in (
            ("readings", _readings(t0=now + 3 * 86400), "future"),
            ("readings", _readings(t0=now - 500 * 86400), "past"),
            ("energy", {"t0": 4_000_000_000, "step": 900, "m": {"main": [1.0]}}, "future"),
            ("faults", {"faults": [dict(FAULT, last=now + 30 * 86400)]}, "future"),
            ("monthly", {"month": "2099-12", "kwh": 1.0}, "future"),
            ("ledger", dict(LEDGER, day="2027-01-01"), "future")):
        with pytest.raises(PayloadError) as err:
            decode(topic("hp-01", kind), encode(_env(**body)), now)
        assert err.value.code == code, (kind, err.value)


def test_nan_never_leaves_a_site():
    with pytest.raises(ValueError):
        encode(_env(**_readings(p={"x": [[0, float("nan")]]})))


# --- the site file ------------------------------------------------------------------------

def _site_text(site_file: Path, table: str) -> str:
    return site_file.read_text(encoding="utf-8") + "\n[portfolio]\n" + table


@pytest.mark.parametrize("table, problem", [
    ('broker = "http://x"\nsite_id = "hp-01"', "mqtt://"),
    ('broker = "mqtt://"\nsite_id = "hp-01"', "mqtt://"),
    ('broker = "mqtt://h:99999"\nsite_id = "hp-01"', "mqtt://"),
    ('broker = "mqtts://h:8883"\nsite_id = "HP 01"', "lower-case"),
    ('broker = "mqtts://h:8883"\nsite_id = ""', "lower-case"),
    ('broker = "mqtts://h:8883"\nsite_id = "hp-01"\ninterval_s = nan', "whole number"),
    ('broker = "mqtts://h:8883"\nsite_id = "hp-01"\ninterval_s = 1', "5..3600"),
    ('broker = "mqtts://h:8883"\nsite_id = "hp-01"\nreadings = "1s"', "raw, 15m"),
    ('broker = "mqtts://h:8883"\nsite_id = "hp-01"\npassword_file = "missing.txt"', "no such file"),
    ('broker = "mqtts://h:8883"\nsite_id = "' + "é" * 5000 + '"', "characters"),
    ('site_id = "hp-01"', "required"),
])
def test_a_bad_portfolio_table_is_refused(site_file, table, problem):
    from bems.config import ConfigError, parse_site

    with pytest.raises(ConfigError) as err:
        parse_site(_site_text(site_file, table), source=site_file)
    assert problem in str(err.value)


PORTFOLIO = '\n[portfolio]\nbroker = "mqtts://h:8883"\nsite_id = "hp-01"\n'


@pytest.mark.parametrize("find, replace, problem", [
    ("staff = 180", "staff = -1", "0..1000000"),
    ('name = "Trung tâm Hành chính Hải Phòng (mô phỏng)"', 'name = "  "', "printable"),
    ("floor_area_m2 = 4982.0", "floor_area_m2 = 0.5", "1 m²"),
    ('"f1.core.temp"', '"f1 core temp"', "refuses this id"),
    ('"meter.main.kw"', '"đồng hồ"', "refuses this id"),
    ('"fc1"', '"tầng 1"', "refuses this id"),
    ('site_id = "hp-01"', 'site_id = "ingest"', "ingest"),
    ('site_id = "hp-01"', 'site_id = "hp-01"\nusername = "hp-02"', "must be the site id"),
    ('site_id = "hp-01"', 'site_id = "hp-01"\nusername = "hp-01/#"', "must be the site id"),
])
def test_check_config_refuses_what_the_city_would_refuse(site_file, find, replace, problem):
    """A site file whose registry entry or ids the city's schema refuses never starts
    reporting (a refused message once froze a centre's confirmations for good)."""
    from bems.config import ConfigError, parse_site

    text = site_file.read_text(encoding="utf-8") + PORTFOLIO
    assert find in text, find
    # an id is renamed everywhere it is used
    bad = text.replace(find, replace, 1 if "=" in find else -1)
    with pytest.raises(ConfigError) as err:
        parse_site(bad, source=site_file)
    assert problem in str(err.value), str(err.value)[:2000]


def test_a_password_is_only_sent_over_tls(site_file, tmp_path):
    from bems.config import ConfigError, parse_site

    pw = tmp_path / "pw.txt"
    pw.write_text("secret\n")
    with pytest.raises(ConfigError, match="only sent over TLS"):
        parse_site(_site_text(site_file, f'broker = "mqtt://h:1883"\nsite_id = "hp-01"\n'
                                         f'password_file = "{pw}"'), source=site_file)
    s = parse_site(_site_text(site_file, f'broker = "mqtts://h:8883"\nsite_id = "hp-01"\n'
                                         f'password_file = "{pw}"'), source=site_file)
    assert s.portfolio.tls and s.portfolio.password() == "secret"


# --- the outbox ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site_db(site, tmp_path_factory):
    return synthetic_db(tmp_path_factory.mktemp("edge") / "edge.sqlite", site,
                        dt.datetime(2026, 11, 18, 17, 0), days=40)


def _copy(db: Path, to: Path) -> Path:
    import shutil

    shutil.copy(db, to)
    return to


@pytest.mark.parametrize("res", ["raw", "15m"])
def test_the_collector_fills_the_outbox_with_valid_messages(site, site_db, tmp_path, res):
    db = _copy(site_db, tmp_path / "s.sqlite")
    with Store(db, site.timezone) as store:
        # every real centre has faults (one made the collector fail every run, and the
        # centre report nothing at all); one of them acknowledged by someone
        for i, target in enumerate(("f1.p1", "f2.p3")):
            first = NOW - dt.timedelta(hours=20 - i)
            fid = store.record_fault({
                "rule": "ac_after_hours", "target": target, "target_kind": "zone",
                "first": first, "last": first + dt.timedelta(hours=2), "detected": NOW,
                "kwh_per_day": 12.5, "vnd_per_day": 27_000.0, "discomfort_kh": 0.0,
                "evidence": {}}, NOW - dt.timedelta(hours=1))
        store.update_fault(fid, "op1", NOW - dt.timedelta(minutes=30), status="acknowledged")
        c = Collector(site, store, readings=res)
        runs = [c.collect(NOW) for _ in range(12)]  # a join catches up 6 h of readings a run
        n = sum(runs)
        assert runs[-1] == 0 and c.refused == 0
        rows = store.unsent(0, 100_000)
        assert n == len(rows) > 0
        kinds = [k for _, k, _, _ in rows]
        assert kinds[0] == "site"  # the registry comes first
        assert {"readings", "energy", "ledger", "monthly", "faults"} <= set(kinds)
        faults = [f for _, k, b, _ in rows if k == "faults" for f in json.loads(b)["faults"]]
        assert {(f["target"], f["status"]) for f in faults} == {("f1.p1", "open"),
                                                                ("f2.p3", "acknowledged")}
        for seq, kind, body, created in rows:
            msg = {"v": 1, "site": "hp-01", "box": store.outbox_id(), "seq": seq,
                   "sent": created, **json.loads(body)}
            decode(topic("hp-01", kind), encode(msg))  # every one passes the schema
        devices = {p.device for p in site.points}
        batches = [json.loads(b) for _, k, b, _ in rows if k == "readings"]
        assert {b["dev"] for b in batches} <= devices and all(b["res"] == res for b in batches)
        # later: only what is new
        added = Collector(site, store, readings=res).collect(NOW + dt.timedelta(minutes=30))
        assert 0 < added <= 2 * len(devices) + 1


def test_readings_backfilled_behind_the_cursor_are_sent_late(site, site_db, tmp_path):
    """A polling gap filled later from the devices' trend logs: its readings are sent with a
    cursor of their own, with the energy of the day (they were never sent before)."""
    db = _copy(site_db, tmp_path / "late.sqlite")
    lo, hi = NOW - dt.timedelta(hours=10), NOW - dt.timedelta(hours=9)
    with Store(db, site.timezone) as store:
        gap = [r for p in ("f2.p1.temp", "meter.main.kwh")
               for r in [(p, t, v, q) for t, v, q in store.readings(p, lo, hi)]]
        assert gap
        store.db.execute("DELETE FROM readings WHERE ts >= ? AND ts < ?",
                         [int(lo.timestamp()), int(hi.timestamp())])
        store.db.conn.commit()
        c = Collector(site, store, readings="raw")
        while c.collect(NOW):
            pass
        before = store.outbox_status()["last_seq"]
        store.insert_readings(gap)  # the backfill, stamped at the old times
        store.refresh_rollups()
        assert Collector(site, store, readings="raw").collect(NOW) > 0
        rows = store.unsent(before, 1000)
        sent = [(json.loads(b), k) for _, k, b, _ in rows]
        late = {p for b, k in sent if k == "readings" for p in b["p"]
                if b["t0"] < int(hi.timestamp()) and b["t0"] + max(
                    s[0] for s in b["p"][p]) >= int(lo.timestamp())}
        assert {"f2.p1.temp", "meter.main.kwh"} <= late
        assert any(k == "energy" for _, k in sent)
        # once queued, not again
        assert Collector(site, store, readings="raw").collect(NOW) == 0


def test_the_outbox_is_sent_in_order_and_pruned(store):
    store.enqueue([("ledger", {"n": i}) for i in range(10)], NOW)
    rows = store.unsent(0, 4)
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert store.confirm_sent(3, NOW) == 3 and store.confirm_sent(2, NOW) == 0
    assert [r[0] for r in store.unsent(0, 100)] == list(range(4, 11))
    assert store.outbox_status()["unsent"] == 7
    assert store.prune_outbox(NOW + dt.timedelta(days=1), max_unsent=5) == (3, 2)
    assert [r[0] for r in store.unsent(0, 100)] == [6, 7, 8, 9, 10]
    store.enqueue([("ledger", {})], NOW)
    assert store.unsent(10, 10)[0][0] == 11  # sequence numbers are never reused


# --- real Mosquitto and PostgreSQL --------------------------------------------------------

services = pytest.mark.integration
SITES = ("hp-01", "hp-02", "hp-03", "hp-04")
HOSTILE = ("hp-05", "hp-06", "hp-07", "hp-08")  # attackers, and the centres beside them


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    from city.ingest import Ingest
    from devtools.services import Mosquitto, Postgres, make_pki

    import shutil

    root = tmp_path_factory.mktemp("city")
    pki = make_pki()
    pg = broker = ingest = None
    try:
        pg = Postgres().start()
        # each client's queue bounded to 16 MB (a city's is larger): a flood costs that much
        broker = Mosquitto(pki, max_queued_bytes=16 << 20)
        broker.add_user("ingest", "ingest-secret")
        for s in SITES + HOSTILE:
            broker.add_user(s, f"{s}-secret")
        broker.start()
        # the city's clock is the tests' (their data is of November 2026, whatever the day)
        ingest = Ingest(pg.dsn, broker.url, username="ingest", password="ingest-secret",
                        ca_file=broker.ca, linger_s=0.05, clock=lambda: NOW)
        order: dict[str, list[int]] = {}
        ingest.on_batch = lambda msgs: [order.setdefault(m.box, []).append(m.seq)
                                        for m in msgs]
        ingest.start()
        assert ingest.connected.wait(20)
        state = {"pg": pg, "broker": broker, "ingest": ingest, "root": root, "order": order}
        yield state
        ingest = state["ingest"]  # a test may have replaced it
    finally:
        if ingest is not None:
            ingest.stop()
        if broker is not None:
            broker.remove()
        if pg is not None:
            pg.stop()
        shutil.rmtree(pki["ca"].parent, ignore_errors=True)


def _portfolio(city, site_id: str, password: str | None = None) -> Portfolio:
    pw = city["root"] / f"{site_id}.pw"
    pw.write_text(password or f"{site_id}-secret")
    return Portfolio(broker=city["broker"].url, site_id=site_id, username=site_id,
                     password_file=pw, ca_file=city["broker"].ca, interval_s=5)


def _sql(city, q: str, *args):
    import psycopg

    with psycopg.connect(city["pg"].dsn) as c:
        return c.execute(q, args).fetchall()


def _wait(cond, timeout=60.0, what=""):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _taken(city, site_id: str, db: Path) -> list[int]:
    with Store(db) as store:
        box = store.outbox_id()
    return [r[0] for r in _sql(city, "SELECT seq FROM messages WHERE site = %s AND box = %s "
                                     "ORDER BY seq", site_id, box)]


def _publish(city, site_id, db, tz="Asia/Ho_Chi_Minh"):
    p = Publisher(_portfolio(city, site_id), db, tz)
    p.start()
    return p


@pytest.fixture(scope="module")
def reported(city, site, site_db, tmp_path_factory):
    """Three centres (copies of the synthetic store) that reported everything to the city."""
    folder = tmp_path_factory.mktemp("reported")
    pubs, last, dbs = [], {}, {}
    for i, sid in enumerate(SITES[:3]):
        db = dbs[sid] = _copy(site_db, folder / f"{sid}.sqlite")
        big = dataclasses.replace(site, name=f"Trung tâm {i + 1} — Hải Phòng",
                                  reports=dataclasses.replace(site.reports, staff=40 + 10 * i))
        with Store(db, site.timezone) as store:
            c = Collector(big, store, readings="15m")
            while c.collect(NOW):
                pass
            last[sid] = store.outbox_status()["last_seq"]
        pubs.append(_publish(city, sid, db))
    try:
        for sid in last:
            _wait(lambda: _taken(city, sid, dbs[sid]) == list(range(1, last[sid] + 1)), 90, sid)
    finally:
        for p in pubs:
            p.stop()
    return {"last": last, "dbs": dbs}


@services
def test_several_sites_report_to_the_city(city, site, reported):
    last = reported["last"]
    for sid in last:
        with Store(reported["dbs"][sid]) as store:
            assert store.outbox_status()["unsent"] == 0  # marked sent once the broker had them
    rows = _sql(city, "SELECT id, name, floor_area_m2, staff, main_meter FROM sites "
                      "WHERE id = ANY(%s) ORDER BY id", list(last))
    assert [r[0] for r in rows] == list(last)
    assert rows[1][1] == "Trung tâm 2 — Hải Phòng"  # Vietnamese survives the trip
    assert rows[0][2] == site.floor_area_m2 and rows[0][4] == site.main_meter().id
    # what was sent is what is stored: every 15-minute reading, once
    with Store(reported["dbs"]["hp-01"]) as store:
        sent = sum(len(s) for _, k, b, _ in store.db.execute(
            "SELECT id, kind, body, created FROM outbox").fetchall() if k == "readings"
            for s in json.loads(b)["p"].values())
    (n,), = _sql(city, "SELECT count(*) FROM readings WHERE site = 'hp-01'")
    assert n == sent > 1000
    days = _sql(city, "SELECT day, kwh FROM energy_daily WHERE site = 'hp-01' AND meter = %s "
                      "ORDER BY day", site.main_meter().id)
    assert len(days) >= 30 and all(k > 0 for _, k in days)
    months = _sql(city, "SELECT month, kwh FROM monthly WHERE site = 'hp-01' ORDER BY month")
    assert months and months[-1][0] == "2026-10" and months[-1][1] > 0


def _stream(db: Path, n: int, start_t0: int = 1_790_000_000, created: int | None = None) -> int:
    """`n` readings batches of one device, each 20 points × 1 minute, queued at `created`
    (epoch s; default the data's start)."""
    with Store(db) as store:
        first = store.outbox_status()["last_seq"] + 1
        store.enqueue([("readings", {"dev": "d1", "t0": start_t0 + 60 * i, "res": "raw",
                                     "p": {f"p{j}": [[0, float(i + j)]] for j in range(20)}})
                       for i in range(n)], created or start_t0)
    return first


@services
def test_a_broker_restart_mid_stream_loses_nothing(city, tmp_path):
    db = tmp_path / "restart.sqlite"
    Store(db).close()
    _stream(db, 4000)
    p = _publish(city, "hp-04", db)
    try:
        _wait(lambda: p.published > 500, 60, "the stream to start")
        city["broker"].restart()
        _wait(lambda: _taken(city, "hp-04", db) == list(range(1, 4001)), 120, "every message")
        assert p.connects >= 2
    finally:
        p.stop()
    (n, dup), = _sql(city, "SELECT count(*), count(*) - count(DISTINCT (point, t)) FROM "
                           "readings WHERE site = 'hp-04'")
    assert (n, dup) == (4000 * 20, 0)
    with Store(db) as store:
        seqs = city["order"][store.outbox_id()]
    assert sorted(set(seqs)) == list(range(1, 4001))


@services
def test_a_broker_that_crashes_and_loses_its_queue_loses_nothing(city, tmp_path):
    """SIGKILL, and the persistence file gone: what the broker had acknowledged but not yet
    delivered is lost there; the site still has it (unconfirmed by the city) and sends it
    again."""
    db = tmp_path / "crash.sqlite"
    Store(db).close()
    _stream(db, 3000, start_t0=1_792_000_000)
    p = Publisher(_portfolio(city, "hp-04"), db, resend_s=3.0)
    p.start()
    try:
        _wait(lambda: p.published > 800, 60, "the stream to start")
        city["broker"].crash(forget=True)
        _wait(lambda: _taken(city, "hp-04", db) == list(range(1, 3001)), 120, "every message")
        _wait(lambda: p.sent == 3000, 30, "every confirmation")
    finally:
        p.stop()
    with Store(db) as store:
        assert store.outbox_status()["unsent"] == 0


@services
def test_a_site_offline_for_a_day_replays_in_order(city, tmp_path):
    db = tmp_path / "offline.sqlite"
    Store(db).close()
    city["broker"].stop()
    try:
        p = _publish(city, "hp-02", db)
        first = _stream(db, 1440, start_t0=1_791_000_000)  # a day of 1-minute batches
        p.wake()
        time.sleep(1.5)
        assert p.sent == 0 and not p.connected and p.last_error
    finally:
        city["broker"].start()
    try:
        assert city["ingest"].connected.wait(30)
        _wait(lambda: len(_taken(city, "hp-02", db)) == 1440, 120, "the replay")
    finally:
        p.stop()
    with Store(db) as store:
        replayed = city["order"][store.outbox_id()]
    assert replayed == sorted(replayed)  # in order
    assert first == 1 and set(replayed) == set(range(1, 1441))


@services
def test_a_replay_runs_a_bounded_way_ahead_of_the_city(city, tmp_path):
    """A centre back from an outage sends at most `ahead` messages beyond what the city has
    confirmed (the city's queue at the broker is fed, not flooded: a queue that overflows
    stalls, and a stall makes every unconfirmed message go again). The bench: a 50-centre
    replay published 2.86 times its rows without this, 1.07 times with it."""
    db = tmp_path / "ahead.sqlite"
    Store(db).close()
    _stream(db, 1200, start_t0=1_792_000_000)
    p = Publisher(_portfolio(city, "hp-05"), db, ahead=50)
    most = 0
    p.start()
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and p.sent < 1200:
            with p._lock:
                most = max(most, p._published_max - p._confirmed)
            time.sleep(0.002)
    finally:
        p.stop()
    assert _taken(city, "hp-05", db) == list(range(1, 1201))
    assert 0 < most <= 50, most
    assert p.published == 1200 and p.resends == 0  # nothing went twice


def _raw_client(city, user: str, password: str):
    from connectors.mqtt.client import make_client

    c, host, port = make_client(city["broker"].url, f"raw-{user}-{time.monotonic_ns()}",
                                username=user, password=password, ca_file=city["broker"].ca)
    got: list = []
    c.on_message = lambda _c, _u, m: got.append(m.topic)
    c.connect(host, port)
    c.loop_start()
    _wait(c.is_connected, 10, "connect")
    return c, got


@services
def test_a_site_cannot_publish_as_another_nor_read_others(city):
    before = _sql(city, "SELECT count(*) FROM messages WHERE site = 'hp-01'")
    spy, seen = _raw_client(city, "hp-03", "hp-03-secret")
    spy.subscribe("bems/v1/#", qos=1)
    spy.subscribe("$share/x/bems/v1/#", qos=1)
    c, _ = _raw_client(city, "hp-02", "hp-02-secret")
    try:
        forged = encode(_env("hp-01", 999_999, month="2026-01", kwh=1.0))
        c.publish(topic("hp-01", "monthly"), forged, qos=1).wait_for_publish(10)
        # its own topic, another's id inside: the ingest refuses it
        dropped = city["ingest"].dropped["site_mismatch"]
        c.publish(topic("hp-02", "monthly"), forged, qos=1).wait_for_publish(10)
        _wait(lambda: city["ingest"].dropped["site_mismatch"] == dropped + 1, 20, "mismatch")
        time.sleep(0.5)
    finally:
        for x in (c, spy):
            x.disconnect()
            x.loop_stop()
    # the broker's ACL dropped the forged one
    assert _sql(city, "SELECT count(*) FROM messages WHERE site = 'hp-01'") == before
    assert not _sql(city, "SELECT 1 FROM monthly WHERE month = '2026-01'")
    assert all(t == "bems/v1/hp-03/ack" for t in seen)  # its own confirmations at most
    (n,), = _sql(city, "SELECT n FROM dropped WHERE code = 'site_mismatch'")
    assert n >= 1


@services
def test_malformed_payloads_are_counted_and_dropped(city):
    c, _ = _raw_client(city, "hp-03", "hp-03-secret")
    ingest = city["ingest"]
    before = dict(ingest.dropped)
    bad = [b"", b"\x00\xff", b"{", encode(_env("hp-03", 3)).replace(b"1790000000", b"NaN"),
           encode({"v": 9, "site": "hp-03", "seq": 1, "sent": 1_790_000_000}),
           b"[" * 50_000, b" " * (MAX_PAYLOAD + 10),
           encode(_env("hp-03", 5, **_readings(p={"x": [[0, 1e300]]})))]
    try:
        for b in bad:
            c.publish(topic("hp-03", "readings"), b, qos=1).wait_for_publish(10)
        good = encode(_env("hp-03", 77, **_readings()))
        c.publish(topic("hp-03", "readings"), good, qos=1).wait_for_publish(10)
        _wait(lambda: _sql(city, "SELECT 1 FROM messages WHERE site = 'hp-03' AND seq = 77"),
              20, "the good one after the bad")
        _wait(lambda: sum(ingest.dropped.values()) - sum(before.values()) == len(bad), 5,
              "every bad one counted")
    finally:
        c.disconnect()
        c.loop_stop()
    assert {"json", "oversized", "version", "value"} <= set(ingest.dropped)
    assert ingest.connected.is_set()


@services
def test_a_wrong_credential_or_plain_tcp_is_refused(city, tmp_path):
    import paho.mqtt.client as mqtt

    db = tmp_path / "x.sqlite"
    Store(db).close()
    _stream(db, 3)
    p = Publisher(_portfolio(city, "hp-01", password="wrong"), db)
    p.start()
    try:
        _wait(lambda: p.last_error is not None, 20, "a refusal")
        assert "refused" in p.last_error.lower() and p.sent == 0
    finally:
        p.stop()
    plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plain")
    plain.username_pw_set("hp-01", "hp-01-secret")
    with pytest.raises(Exception):
        plain.connect("127.0.0.1", city["broker"].port, keepalive=5)
        plain.loop_start()
        _wait(plain.is_connected, 3, "plain")
    plain.loop_stop()


# --- fleet forecasting --------------------------------------------------------------------

@services
def test_the_fleet_is_refitted_on_dask_and_its_forecast_shown(city, reported, city_app):
    """Every meter of the reporting centres, refitted on a local Dask cluster (the global
    model and the stack), tomorrow's 24 hours stored and drawn on the centre's page."""
    from dask.distributed import Client, LocalCluster

    from city.fleet import refit_city

    day = dt.date(2026, 11, 18)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as lc, Client(lc) as client:
        info = refit_city(city["pg"].dsn, client, day, model="stack")
    meters = {(s, m) for s in SITES[:3] for m in ("main", "ac", "lighting", "plugs")}
    assert info["meters"] == len(meters)
    rows = _sql(city, "SELECT site, meter, count(*), min(kw), max(kw), min(model) FROM "
                      "forecasts WHERE t >= %s AND t < %s GROUP BY 1, 2",
                dt.datetime(2026, 11, 17, 17, 0, tzinfo=UTC),
                dt.datetime(2026, 11, 18, 17, 0, tzinfo=UTC))
    assert {(r[0], r[1]) for r in rows} == meters
    for site_id, meter, n, lo, hi, model in rows:
        assert n == 24 and lo >= 0 and model == "stack"
    # the synthetic main meter draws 19 kW at night and 118 kW in office hours
    main = _sql(city, "SELECT extract(hour FROM t AT TIME ZONE 'Asia/Ho_Chi_Minh'), kw FROM "
                      "forecasts WHERE site = 'hp-01' AND meter = 'main' ORDER BY t")
    by_hour = {int(h): kw for h, kw in main[-24:]}
    assert by_hour[10] > 3 * by_hour[2]
    page = _client(city_app, "admin1", "pw-admin-1").get("/centre/hp-01").get_data(as_text=True)
    assert 'id="forecast"' in page and "(stack)" in page


# --- the portfolio UI ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def city_app(city, reported, tmp_path_factory):
    from bems.users import hash_password
    from city.queries import CityQueries
    from city.web import create_city_app
    from webui.auth import brake

    db = tmp_path_factory.mktemp("cityweb") / "users.sqlite"
    with Store(db) as store:
        store.add_user("viewer1", "viewer", hash_password("pw-viewer-1"), "vi")
        store.add_user("admin1", "admin", hash_password("pw-admin-1"), "en")
    brake.clear()
    queries = CityQueries(city["pg"].dsn)
    app = create_city_app("Sở Xây dựng Hải Phòng", db, queries,
                          test_config={"TESTING": True, "WTF_CSRF_ENABLED": False},
                          clock=lambda: NOW)
    yield app, db
    queries.close()


def _client(city_app, user="viewer1", password="pw-viewer-1"):
    c = city_app[0].test_client()
    r = c.post("/login", data={"username": user, "password": password})
    assert r.status_code == 302
    return c


@services
def test_the_city_ranks_its_centres(city_app):
    anon = city_app[0].test_client()
    assert anon.get("/").status_code == 302  # a login first
    c = _client(city_app)  # a viewer, in Vietnamese
    page = c.get("/").get_data(as_text=True)
    for sid in SITES[:3]:
        assert f'id="centre-{sid}"' in page
    assert "Trung tâm 2 — Hải Phòng" in page and "kWh/m²" in page
    assert "Các trung tâm hành chính" in page  # Vietnamese
    for sort in ("eui", "kwh_per_staff", "change", "savings", "faults", "compliance",
                 "freshness", "gaps", "name", "junk", "' OR 1=1 --", "é" * 5000):
        r = c.get("/", query_string={"sort": sort})
        assert r.status_code == 200
    # a centre that reported everything misses nothing (others were sent gaps on purpose)
    assert 'id="gaps-hp-01">0' in page
    assert "Bản tin còn thiếu" in page
    order = [m for m in re.findall(r'id="centre-([a-z0-9-]+)"',
                                   c.get("/?sort=kwh_per_staff").get_data(as_text=True))]
    assert order == ["hp-01", "hp-02", "hp-03"]  # the same energy, fewer people: more per person


@services
def test_a_centre_page_shows_its_load(city_app):
    c = _client(city_app, "admin1", "pw-admin-1")
    page = c.get("/centre/hp-01").get_data(as_text=True)
    assert 'id="load-chart"' in page and 'id="measured"' in page
    assert "2026-10" in page  # its months
    for bad in ("/centre/nope", "/centre/HP-01", "/centre/%00", "/centre/" + "a" * 300,
                "/centre/ắ"):
        assert c.get(bad).status_code == 404


@services
def test_the_city_month_and_the_yearly_report(city_app):
    import io

    from openpyxl import load_workbook

    c = _client(city_app, "admin1", "pw-admin-1")
    page = c.get("/month?month=2026-10").get_data(as_text=True)
    assert "3 of 3 centres reported" in page
    for bad in ("2026-13", "../etc", "2026-1", "nan", "é"):
        assert c.get("/month", query_string={"month": bad}).status_code == 400
    r = c.get("/year.xlsx?year=2026")
    assert r.status_code == 200 and r.mimetype.endswith("sheet")
    ws = load_workbook(io.BytesIO(r.data)).active
    rows = [[x.value for x in row] for row in ws.iter_rows(min_row=4)]
    by = {r[0]: r for r in rows if r[0]}
    assert set(by) == set(SITES[:3])
    assert by["hp-02"][4] == 50 and by["hp-01"][5 + 9] > 0  # staff; October's kWh
    assert rows[-1][1] == "Toàn thành phố"
    assert abs(rows[-1][17] - sum(by[s][17] for s in by)) < 1
    for bad in ("1e300", "nan", "", "-1", "99999"):
        assert c.get("/year.xlsx", query_string={"year": bad}).status_code == 400
    with Store(city_app[1]) as store:
        assert any(a["action"] == "report.city_year" for a in store.audit_rows(limit=20))


@services
@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists() and not __import__("os").environ.get(
    "CI"), reason="Debian chromium missing (apt-get install chromium)")
def test_the_city_office_in_the_browser(city_app, tmp_path):
    from playwright.sync_api import sync_playwright

    from devtools.ports import free_port
    from webui.server import WebServer

    server = WebServer(city_app[0], "127.0.0.1", free_port()).start()
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                  args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = b.new_page(accept_downloads=True)
            base = server.url.rstrip("/")
            page.goto(base + "/")
            page.fill("input[name=username]", "viewer1")
            page.fill("input[name=password]", "pw-viewer-1")
            page.click("button[type=submit]")
            page.wait_for_selector("#ranking")
            assert page.locator("h1").inner_text() == "Các trung tâm hành chính"
            assert page.locator("#ranking tbody tr").count() == 3
            page.click("#sort-kwh_per_staff")
            page.wait_for_selector("#ranking")
            first = page.locator("#ranking tbody tr").first.get_attribute("id")
            assert first == "centre-hp-01"
            page.click("#lang-en")
            page.wait_for_selector("text=Administrative centres")
            page.click("#centre-hp-02 a")
            page.wait_for_selector("#load-chart")
            assert page.locator("#measured").count() == 1
            assert "Trung tâm 2" in page.locator("h1").inner_text()
            page.goto(base + "/month?month=2026-10")
            assert "3 of 3 centres reported" in page.locator("#summary").inner_text()
            page.goto(base + "/")
            with page.expect_download() as dl:
                page.click("#year-2026")
            saved = tmp_path / "tt25.xlsx"
            dl.value.save_as(saved)
            assert saved.stat().st_size > 3000
            ARTIFACTS = Path(__file__).parent / "artifacts"
            ARTIFACTS.mkdir(exist_ok=True)
            page.goto(base + "/")
            page.screenshot(path=str(ARTIFACTS / "portfolio-ranking.png"), full_page=True)
            b.close()
    finally:
        server.stop()


@services
def test_bems_run_reports_to_the_city(city, site, tmp_path):
    """The runtime with [portfolio], left to its own jobs: it polls every (wall) second at
    BEMS time, its portfolio job puts what is new in the outbox every 5 s, the publisher sends
    it; stopped, it stops the publisher too."""
    from connectors.memory import MemoryBus
    from bems.runtime import Runtime

    class Clock:
        t = dt.datetime(2026, 11, 16, 1, 0, tzinfo=UTC)  # Monday 08:00 in Hải Phòng

        def __call__(self):
            return self.t

    clock = Clock()
    cfg = dataclasses.replace(_portfolio(city, "hp-03"), readings="raw", interval_s=5)
    s = dataclasses.replace(site, portfolio=cfg)
    bus = MemoryBus(s, clock=clock)
    for z in s.zones:
        bus.set(z.temperature, 27.0)
    db = tmp_path / "run.sqlite"
    rt = Runtime(s, db, bus=bus, clock=clock, poll_interval_s=1, strategy_interval_s=60)
    rt.start()
    start = clock.t
    try:
        def stored() -> int:
            clock.t += dt.timedelta(seconds=30)  # BEMS time runs 30× faster than the wall
            (n,), = _sql(city, "SELECT count(DISTINCT t) FROM readings WHERE site = 'hp-03' "
                               "AND t >= %s", start)
            return n
        _wait(lambda: stored() >= 5, 90, "five polls at the city")
    finally:
        rt.stop()
    assert rt.publisher is not None and not rt.publisher.connected  # stopped with the runtime
    (pts,), = _sql(city, "SELECT count(DISTINCT point) FROM readings WHERE site = 'hp-03' "
                         "AND t >= %s", start)
    assert pts == len(s.points)  # every point of the site


# --- a centre that attacks, or is merely faulty ---------------------------------------------

def _raw(city, user: str, client_id: str | None = None):
    """An MQTT client with `user`'s credential and a client id of its choosing (which the
    broker replaces by the user name)."""
    from connectors.mqtt.client import make_client

    c, host, port = make_client(city["broker"].url, client_id or f"raw-{time.monotonic_ns()}",
                                username=user, password=f"{user}-secret",
                                ca_file=city["broker"].ca)
    got: list = []
    c.on_message = lambda _c, _u, m: got.append((m.topic, m.payload, m.retain))
    c.connect(host, port)
    c.loop_start()
    _wait(c.is_connected, 10, "connect")
    return c, got


def _close(*clients) -> None:
    for c in clients:
        c.disconnect()
        c.loop_stop()


def _good_centre(city, sid: str, tmp_path: Path, n: int, t0: int) -> tuple[Path, Publisher]:
    db = tmp_path / f"{sid}.sqlite"
    Store(db).close()
    _stream(db, n, start_t0=t0, created=int(time.time()))  # queued now, for the latency
    return db, _publish(city, sid, db)


def _latencies(city, sid: str, db: Path) -> list[float]:
    """Per message: from the moment it was queued at the centre to the city's commit."""
    with Store(db) as store:
        box = store.outbox_id()
        created = {r[0]: r[1] for r in store.db.execute("SELECT id, created FROM outbox")}
    rows = _sql(city, "SELECT seq, extract(epoch FROM received) FROM messages WHERE site = %s "
                      "AND box = %s", sid, box)
    return sorted(float(r) - created[seq] for seq, r in rows)


@services
def test_a_centre_cannot_starve_the_ingest_nor_take_its_session(city, tmp_path):
    """With its own credential a centre subscribes to the ingest's old shared group and to
    everything, and connects as "ingest" and as its neighbour: the broker gives it its own
    client id (its user name), the ingest's subscription is its own, and the centre beside it
    loses nothing, every message at the city within 5 s (p99)."""
    ingest = city["ingest"]
    spy, seen = _raw(city, "hp-05", client_id="ingest")  # the ingest's client id
    spy.subscribe([("$share/ingest/bems/v1/+/+", 1), ("$share/x/bems/v1/#", 1),
                   ("bems/v1/+/+", 1)])
    thief, _ = _raw(city, "hp-07", client_id="hp-06")  # its neighbour's
    try:
        time.sleep(0.5)
        assert ingest.connected.is_set()
        db, p = _good_centre(city, "hp-06", tmp_path, 60, 1_792_500_000)
        try:
            _wait(lambda: _taken(city, "hp-06", db) == list(range(1, 61)), 60, "every message")
            _wait(lambda: p.sent == 60, 30, "every confirmation")
            assert p.connects == 1  # nobody took its session
        finally:
            p.stop()
        lat = _latencies(city, "hp-06", db)
        assert lat[int(0.99 * (len(lat) - 1))] < 5.0, lat[-5:]
        assert ingest.connected.is_set()
        # the spy read nothing of anyone's (its own confirmations at most)
        assert all(t.startswith("bems/v1/hp-05/") for t, _p, _r in seen), seen[:3]
    finally:
        _close(spy, thief)


def _hostile_messages(box: str) -> list[tuple[str, bytes]]:
    """The poison variants (seq 1..7), then three good ones (seq 8..10), under hp-05."""
    out = []
    for seq, (kind, body) in enumerate(POISON, 1):
        env = dict(_env("hp-05", seq, **body), box=box)
        out.append((kind, json.dumps(env).encode()))
    for seq in (8, 9, 10):
        env = dict(_env("hp-05", seq, **_readings(t0=1_792_600_000 + seq)), box=box)
        out.append(("readings", encode(env)))
    return out


@services
def test_poison_messages_are_quarantined_and_never_stop_the_city(city, tmp_path):
    """Each message the schema once let through and PostgreSQL refused (NUL, a lone
    surrogate, an unknown time zone, 31 February…) is quarantined with its reason and
    confirmed as handled: the attacker's own later messages go on being confirmed, and a
    centre beside it loses nothing."""
    box = "5555555555555555"
    c, got = _raw(city, "hp-05")
    c.subscribe("bems/v1/hp-05/ack", qos=1)
    db, p = _good_centre(city, "hp-08", tmp_path, 30, 1_792_700_000)
    try:
        for kind, payload in _hostile_messages(box):
            c.publish(topic("hp-05", kind), payload, qos=1).wait_for_publish(10)
        _wait(lambda: _taken(city, "hp-08", db) == list(range(1, 31)), 60, "the neighbour")

        def confirmed() -> int:
            acks = [json.loads(pl) for t, pl, _r in got if t.endswith("/ack")]
            return max((a["upto"] for a in acks if a["box"] == box), default=0)
        _wait(lambda: confirmed() == 10, 30, "the attacker's confirmations past the poison")
    finally:
        p.stop()
        _close(c)
    rows = _sql(city, "SELECT seq, reason FROM quarantine WHERE site = 'hp-05' AND box = %s "
                      "ORDER BY seq", box)
    assert [r[0] for r in rows] == list(range(1, 8)), rows
    assert all(r[1].startswith("schema:") for r in rows)
    (n,), = _sql(city, "SELECT count(*) FROM readings WHERE site = 'hp-05' AND t >= "
                       "to_timestamp(1792600000)")
    assert n == 3 * 2  # its good messages (two samples each), after the poison


@services
def test_what_slips_past_the_schema_is_quarantined_by_the_database(city, tmp_path,
                                                                  monkeypatch):
    """Defence in depth: with the schema's checks switched off in the ingest, PostgreSQL
    refuses the poison; the batch is then written message by message and the one it refuses
    quarantined, while the others of the same batch are stored."""
    import city.ingest as ingest_mod
    from bems.portfolio import schema

    def lenient(t, payload, now=None):  # the envelope only, as the schema once was
        site, kind = schema.parse_topic(t)
        b = json.loads(payload)
        return schema.Message(site, kind, b["box"], b["seq"], b["sent"], b)

    monkeypatch.setattr(ingest_mod, "decode", lenient)
    box = "6666666666666666"
    c, _ = _raw(city, "hp-07")
    try:
        for seq, name in ((1, "Trung tâm"), (2, "Trung\x00tâm"), (3, "Trung tâm 3")):
            body = dict(_env("hp-07", seq, **dict(SITE_BODY, name=name)), box=box)
            c.publish(topic("hp-07", "site"), json.dumps(body).encode(), qos=1)
        _wait(lambda: _sql(city, "SELECT 1 FROM confirmed WHERE site = 'hp-07' AND box = %s "
                                 "AND upto = 3", box), 30, "all three handled")
    finally:
        _close(c)
    (reason,), = _sql(city, "SELECT reason FROM quarantine WHERE site = 'hp-07' AND box = %s",
                      box)
    assert reason.startswith("store:"), reason
    assert _sql(city, "SELECT name FROM sites WHERE id = 'hp-07'") == [("Trung tâm 3",)]
    assert city["ingest"].connected.is_set()


@services
def test_a_forged_confirmation_never_marks_anything_sent(city, tmp_path):
    """A centre's credential cannot write its confirmation topic (the ACL); and a publisher
    never believes a confirmation beyond what it has sent (here one the ingest's own
    credential forged before anything was sent)."""
    db = tmp_path / "forged.sqlite"
    Store(db).close()
    _stream(db, 50, start_t0=1_792_800_000)
    with Store(db) as store:
        box = store.outbox_id()
    forged = json.dumps({"v": 1, "box": box, "upto": 10**9}).encode()
    c, _ = _raw(city, "hp-05")
    c.publish("bems/v1/hp-05/ack", forged, qos=1, retain=True).wait_for_publish(10)
    _close(c)
    ing, _ = _raw(city, "ingest")  # a stale or forged "upto" from the city's side
    ing.publish("bems/v1/hp-05/ack", forged, qos=1, retain=True).wait_for_publish(10)
    _close(ing)
    p = _publish(city, "hp-05", db)
    try:
        _wait(lambda: _taken(city, "hp-05", db) == list(range(1, 51)), 60, "every message")
        _wait(lambda: p.sent == 50, 30, "every confirmation")
        assert p.ignored_acks >= 1
    finally:
        p.stop()
        ing, _ = _raw(city, "ingest")  # the retained message cleared
        ing.publish("bems/v1/hp-05/ack", b"", qos=1, retain=True).wait_for_publish(10)
        _close(ing)


@services
def test_a_flood_while_the_ingest_is_away_costs_bounded_memory_and_loses_nothing(
        city, tmp_path):
    """The ingest stops; a centre floods 48 MB; the broker keeps at most its queue's
    16 MB for the ingest; the centre beside it has its messages dropped with the flood, sends
    them again, and loses nothing once the ingest is back. Messages from the future are
    quarantined (no partition for 2099, no centre "fresh" until then)."""
    from city.ingest import Ingest

    old = city["ingest"]
    old.stop()
    broker = city["broker"]
    before = broker.rss_kb()
    c, _ = _raw(city, "hp-05")
    db = None
    try:
        # garbage in a valid envelope: 240 kB a message, refused by the schema
        big = encode(dict(_env("hp-05", 1, **_readings(dev="x" * 240_000)),
                          box="7777777777777777"))
        assert 200_000 < len(big) < 300_000
        for seq in range(1, 201):  # 48 MB at most, as fast as the broker takes it
            payload = big.replace(b'"seq":1,', f'"seq":{seq},'.encode())
            c.publish(topic("hp-05", "readings"), payload, qos=1)
        future = encode(dict(_env("hp-05", 201, **_readings(t0=4_070_000_000)),
                             box="7777777777777777"))
        c.publish(topic("hp-05", "readings"), future, qos=1).wait_for_publish(30)
        db, p = _good_centre(city, "hp-06", tmp_path, 40, NOW_S - 7200)
        # its first message goes alone until the city confirms it: handed over, then waiting
        _wait(lambda: p.published >= 1, 30, "the neighbour's first message handed over")
        grown_mb = (broker.rss_kb() - before) / 1024
        assert grown_mb < 40, grown_mb  # bounded by the queue, not by the 48 MB flood
    finally:
        _close(c)
        ing = Ingest(city["pg"].dsn, broker.url, username="ingest", password="ingest-secret",
                     ca_file=broker.ca, linger_s=0.05, clock=lambda: NOW)
        ing.on_batch = old.on_batch
        ing.start()
        city["ingest"] = ing
        assert ing.connected.wait(20)
    try:
        _wait(lambda: _taken(city, "hp-06", db) == list(range(1, 41)), 90, "the neighbour")
    finally:
        p.stop()
    assert not _sql(city, "SELECT 1 FROM pg_tables WHERE tablename LIKE %s", "readings_209%")
    last = _sql(city, "SELECT last_reading FROM sites WHERE id = 'hp-05'")
    assert not last or last[0][0] is None or last[0][0] <= NOW + dt.timedelta(days=1)


@services
def test_confirmed_messages_are_pruned_and_their_replays_still_recognised(city, tmp_path):
    from city.store import CityStore

    db = tmp_path / "prune.sqlite"
    Store(db).close()
    _stream(db, 30, start_t0=1_792_900_000)
    p = _publish(city, "hp-08", db)
    try:
        _wait(lambda: p.sent == 30, 60, "every confirmation")
    finally:
        p.stop()
    with CityStore(city["pg"].dsn) as cs, cs.conn.transaction():
        assert cs.prune_messages(dt.timedelta(0)) >= 30
    assert _taken(city, "hp-08", db) == []  # the rows are gone
    replays = city["ingest"].replays
    with Store(db) as store:  # the centre sends it all again (a reinstall from a backup)
        store.db.execute("UPDATE outbox SET sent = NULL")
        store.db.conn.commit()
    p = _publish(city, "hp-08", db)
    try:
        _wait(lambda: p.sent == 30, 60, "confirmed again")
    finally:
        p.stop()
    assert city["ingest"].replays - replays == 30
    assert _taken(city, "hp-08", db) == []  # nothing taken twice
    (n, dup), = _sql(city, "SELECT count(*), count(*) - count(DISTINCT (point, t)) FROM "
                           "readings WHERE site = 'hp-08' AND t >= to_timestamp(1792900000)")
    assert (n, dup) == (30 * 20, 0)


def test_the_broker_configuration_holds_the_rules(tmp_path):
    """Client ids are user names, centres write only their own kinds (never a confirmation),
    queues are bounded in bytes, password files are private and passwords never on a command
    line."""
    import os
    import stat
    import subprocess as sp
    from unittest import mock

    from city import broker

    acl = broker.acl_text(["ingest"])
    assert "pattern write bems/v1/%u/#" not in acl and "pattern write bems/v1/%u/ack" not in acl
    assert "pattern write bems/v1/%u/readings" in acl and "pattern read bems/v1/%u/ack" in acl
    conf = broker.mosquitto_conf(tmp_path, port=1, cafile=tmp_path, certfile=tmp_path,
                                 keyfile=tmp_path)
    assert "use_username_as_clientid true" in conf and "max_queued_bytes" in conf
    broker.write_config(tmp_path, port=1, cafile=tmp_path, certfile=tmp_path,
                        keyfile=tmp_path, ingest_users=["ingest"])
    calls = []
    real = sp.run

    def spy(args, *a, **kw):
        calls.append(list(args))
        return real(args, *a, **kw)

    with mock.patch("city.broker.subprocess.run", spy):
        broker.set_password(tmp_path, "hp-01", "a-secret-of-the-centre")
    assert calls and all("a-secret-of-the-centre" not in " ".join(c) for c in calls)
    f = tmp_path / "passwords"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert "a-secret-of-the-centre" not in f.read_text()
    assert [p.name for p in tmp_path.iterdir() if "passwords" in p.name] == ["passwords"]
    for bad in ("hp 01", "hp/#", "", "HP", "ingest/x", "x" * 50):
        assert not broker.user_ok(bad)
        with pytest.raises(ValueError):
            broker.set_passwords(tmp_path, {bad: "pw"})
    assert broker.user_ok("ingest") and broker.user_ok("ingest-2") and broker.user_ok("hp-01")
    assert os.access(f, os.R_OK)


def test_add_site_never_makes_a_centre_of_the_ingest_nor_replaces_silently(runner, tmp_path):
    from bems.cli import main
    from city import broker

    broker.write_config(tmp_path, port=1, cafile=tmp_path, certfile=tmp_path,
                        keyfile=tmp_path, ingest_users=["ingest"])
    args = ["portfolio", "add-site", "--broker-dir", str(tmp_path)]
    r = runner.invoke(main, args + ["ingest"])
    assert r.exit_code == 2 and "--ingest" in r.output
    r = runner.invoke(main, args + ["ingest", "--ingest", "--password-stdin"],
                      input="the-ingest-secret-1\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, args + ["hp-01"])
    assert r.exit_code == 0 and "password:" in r.output
    r = runner.invoke(main, args + ["hp-01"])
    assert r.exit_code == 1 and "--replace" in r.output
    assert runner.invoke(main, args + ["hp-01", "--replace"]).exit_code == 0
    assert broker.users(tmp_path) == {"ingest", "hp-01"}


@services
def test_a_sequence_gap_is_counted_for_the_ranking(city):
    from city.store import CityStore

    c, _ = _raw(city, "hp-08")
    box = "8888888888888888"
    try:
        for seq in (1, 2, 5):  # 3 and 4 lost on the way (so far)
            c.publish(topic("hp-08", "readings"), encode(dict(_env(
                "hp-08", seq, **_readings(t0=NOW_S - 100 + seq)), box=box)),
                qos=1).wait_for_publish(10)
        _wait(lambda: _sql(city, "SELECT upto FROM confirmed WHERE site = 'hp-08' AND "
                                 "box = %s", box) == [(2,)], 20, "confirmed up to the gap")
        _wait(lambda: _sql(city, "SELECT 1 FROM messages WHERE site = 'hp-08' AND box = %s "
                                 "AND seq = 5", box), 20, "the one after the gap")
    finally:
        _close(c)
    with CityStore(city["pg"].dsn) as cs:
        assert cs.gaps().get("hp-08") == 2
