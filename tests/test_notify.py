"""Alarms that reach people: the runtime over the in-memory device model, a real SMTP relay
(aiosmtpd on loopback) and a real HTTP webhook receiver. A device going offline is mailed and
posted, and resolved when it returns; a relay down for ten minutes delivers everything once
when it is back; kill -9 during delivery loses nothing; escalation, quiet hours, damping and
digests; hostile settings and answers; the alarm log."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bems.config import ConfigError, load_site, parse_site
from bems.notify import DeliveryError, at_start, deliver, evaluate, post_webhook, send_email
from bems.runtime import Runtime
from bems.storage import Store
from connectors.memory import MemoryBus
from devtools.clock import Clock
from devtools.receivers import HookReceiver, Relay

UTC = dt.timezone.utc
MONDAY_0800 = dt.datetime(2026, 7, 6, 1, 0, tzinfo=UTC)  # 08:00 in Hải Phòng
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def relay():
    r = Relay().start()
    yield r
    r.stop()


@pytest.fixture
def hook():
    h = HookReceiver().start()
    yield h
    h.stop()


def notify_site(site_file: Path, folder: Path, notify: str):
    path = folder / "notify-site.toml"
    path.write_text(site_file.read_text(encoding="utf-8") + "\n" + textwrap.dedent(notify),
                    encoding="utf-8")
    return load_site(path)


def two_recipients(relay: Relay, hook: HookReceiver, folder: Path, extra: str = "") -> str:
    (folder / "hook.key").write_bytes(b"s3cret-key\n")
    return f"""
        [notify]
        smtp = "smtp://127.0.0.1:{relay.port}"
        from = "bems@trungtam.example.vn"
        base_url = "https://bems.trungtam.example.vn"
        timeout_s = 2
        [[notify.recipients]]
        name = "Kỹ thuật trực"
        email = "kythuat@trungtam.example.vn"
        webhook = "{hook.url}"
        secret_file = "hook.key"
        lang = "vi"
        min_severity = "critical"
        [[notify.recipients]]
        name = "Energy officer"
        email = "energy@trungtam.example.vn"
        lang = "en"
        min_severity = "critical"
        {extra}
    """


@pytest.fixture
def clock():
    return Clock(MONDAY_0800)


def runtime(site, clock, folder: Path) -> tuple[Runtime, MemoryBus]:
    bus = MemoryBus(site, clock=clock)
    for p in site.points:  # plausible values everywhere (a setpoint of 0 °C is a sensor alarm)
        if p.id.endswith(".mode"):
            bus.set(p.id, 1)
        elif p.kind == "setpoint":
            bus.set(p.id, 26.0)
    for z in site.zones:
        bus.set(z.temperature, 25.5)
    return Runtime(site, folder / "rt.sqlite", bus=bus, clock=clock), bus


def step(rt: Runtime, clock: Clock, minutes: int) -> None:
    for _ in range(minutes):
        clock.t += dt.timedelta(minutes=1)
        rt.poll()


@pytest.fixture
def centre(site_file, tmp_path, relay, hook, clock):
    """The runtime on the in-memory devices, two recipients (vi: mail and webhook; en: mail),
    polled once and its alarms evaluated: nothing is wrong yet."""
    site = notify_site(site_file, tmp_path, two_recipients(relay, hook, tmp_path))
    rt, bus = runtime(site, clock, tmp_path)
    rt.poll()
    rt.alarms()
    yield rt, bus
    rt.stop()


def test_a_device_offline_is_mailed_and_posted_and_resolved_when_it_returns(centre, relay, hook,
                                                                             clock):
    rt, bus = centre
    assert rt.notify() == {"sent": 0, "events": 0, "failed": 0}
    bus.offline.add("fc2")
    step(rt, clock, 17)  # stale 15 minutes after its last reading (the stale marker)
    events = rt.alarms()
    assert [(e, a["kind"], a["severity"]) for e, a in events] == \
        [("raised", "stale", "critical")]
    assert rt.notify()["sent"] == 3  # two e-mails, one webhook
    mails = {m["To"].addresses[0].addr_spec: m for m in relay.wait_for(2)}
    vi = mails["kythuat@trungtam.example.vn"]
    assert vi["Subject"].startswith("[Khẩn cấp] Không có dữ liệu từ")
    assert "https://bems.trungtam.example.vn/alarms/history?key=stale:fc2" in \
        vi.get_content()
    en = mails["energy@trungtam.example.vn"]
    assert en["Subject"].startswith("[Critical] No data from")
    post = hook.posts[0]
    expected = hmac.new(b"s3cret-key", post["body"], hashlib.sha256).hexdigest()
    assert post["headers"]["X-BEMS-Signature"] == f"sha256={expected}"
    assert post["json"]["events"][0]["kind"] == "stale"
    assert post["json"]["lang"] == "vi"
    assert rt.notify()["sent"] == 0  # nothing twice
    bus.offline.discard("fc2")
    step(rt, clock, 1)
    assert [(e, a["kind"]) for e, a in rt.alarms()] == [("cleared", "stale")]
    assert rt.notify()["sent"] == 3
    relay.wait_for(4)
    subjects = sorted(m["Subject"] for m in relay.messages[2:])
    assert subjects[0].startswith("[Critical] Resolved: No data from")
    assert subjects[1].startswith("[Khẩn cấp] Đã hết: Không có dữ liệu từ")
    log = rt.store.alarm_history()
    assert log[0]["kind"] == "stale" and log[0]["cleared"] is not None
    assert log[0]["sent"] == 6 and log[0]["pending"] == 0


def test_a_relay_down_for_ten_minutes_then_up_delivers_everything_once(centre, relay, hook,
                                                                       clock):
    rt, bus = centre
    relay.stop()  # the relay is down: connections refused
    hook.status = 503
    bus.offline.update({"fc1", "fc2", "fc3"})
    step(rt, clock, 17)
    assert len(rt.alarms()) == 3
    for _ in range(20):  # ten minutes, delivery every 30 s
        clock.t += dt.timedelta(seconds=30)
        counts = rt.notify()
        assert counts["sent"] == 0
    pending = rt.store.notifications()
    assert len(pending) == 9 and all(n["sent"] is None for n in pending)
    assert all(n["attempts"] >= 2 and n["last_error"] for n in pending)
    assert any("503" in n["last_error"] for n in pending)
    assert any("Connection refused" in n["last_error"] or "ConnectionRefused" in
               n["last_error"] for n in pending)
    relay.start()  # back, on the same port
    hook.status = 200
    clock.t += dt.timedelta(minutes=30)  # past the longest back-off
    counts = rt.notify()
    assert counts == {"sent": 3, "events": 9, "failed": 0}  # a digest each
    relay.wait_for(2)
    assert len(relay.messages) == 2 and len(hook.posts) == 1
    for m in relay.messages:
        body = m.get_content()
        assert sum(line.startswith("[") for line in body.splitlines()) == 3
    assert rt.notify()["sent"] == 0
    clock.t += dt.timedelta(hours=1)
    assert rt.notify()["sent"] == 0 and len(relay.messages) == 2


KILLED = """
import datetime as dt, sys
from bems.config import load_site
from bems.notify import deliver
from bems.storage import Store
site = load_site(sys.argv[1])
with Store(sys.argv[2]) as store:
    print("delivering", flush=True)
    deliver(site, store, dt.datetime.fromisoformat(sys.argv[3]))
"""


def test_kill_9_during_delivery_loses_nothing(site_file, tmp_path, relay, hook, clock):
    people = "".join(f"""
        [[notify.recipients]]
        name = "Person {i}"
        email = "p{i}@trungtam.example.vn"
        min_severity = "info"
    """ for i in range(5))
    text = textwrap.dedent(f"""
        [notify]
        smtp = "smtp://127.0.0.1:{relay.port}"
        from = "bems@trungtam.example.vn"
        timeout_s = 10
    """) + textwrap.dedent(people)
    site = notify_site(site_file, tmp_path, text)
    store = Store(tmp_path / "k.sqlite")
    evaluate(site, store, clock.t)
    store.sync_alarms([{"key": "stale:fc1", "kind": "stale", "severity": "critical",
                        "target": "FC1", "value": None}], clock.t)
    store.enqueue_notifications([{"ref": "alarm:1", "key": "stale:fc1", "event": "raised",
                                  "recipient": f"Person {i}", "channel": "email",
                                  "severity": "critical",
                                  "body": {"subject": f"s{i}", "text": f"t{i}"}}
                                 for i in range(5)], clock.t)
    store.close()
    relay.delay_s = 0.5
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(site.source),
                             str(tmp_path / "k.sqlite"), clock.t.isoformat()], cwd=ROOT,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == b"delivering"
        relay.wait_for(2, timeout_s=30)
        os.kill(proc.pid, signal.SIGKILL)  # mid-delivery: the third is with the relay
    finally:
        proc.wait(10)
    time.sleep(0.6)  # the relay finishes what it was holding
    got_before = len(relay.messages)
    assert 2 <= got_before < 5
    relay.delay_s = 0
    with Store(tmp_path / "k.sqlite") as store:
        assert deliver(site, store, clock.t)["failed"] == 0
        assert all(n["sent"] is not None for n in store.notifications())
    ids = [m["Message-ID"] for m in relay.messages]
    to = [m["To"].addresses[0].addr_spec for m in relay.messages]
    assert sorted(set(to)) == [f"p{i}@trungtam.example.vn" for i in range(5)]  # nothing lost
    # at most the message in flight at the kill went twice, and with the same Message-ID
    assert len(relay.messages) - 5 <= 1 and len(set(ids)) == 5


def _site_with(site_file, tmp_path, recipients: str, damp: float = 30):
    return notify_site(site_file, tmp_path, f"""
        [notify]
        smtp = "smtp://127.0.0.1:25"
        from = "bems@trungtam.example.vn"
        damp_min = {damp}
        {recipients}
    """)


def _queued(store) -> list[tuple[str, str, str]]:
    return sorted((n["recipient"], n["event"], n["key"]) for n in store.notifications())


def test_escalation_waits_for_an_unacknowledged_alarm(site_file, tmp_path, store):
    from bems.status import acknowledge

    site = _site_with(site_file, tmp_path, """
        [[notify.recipients]]
        name = "Chief"
        email = "chief@trungtam.example.vn"
        escalate_after_min = 30
    """)
    t = MONDAY_0800
    evaluate(site, store, t)  # everything stale: no data at all yet
    keys = {a["key"] for a in store.open_alarms()}
    assert "stale:fc1" in keys and _queued(store) == []
    evaluate(site, store, t + dt.timedelta(minutes=29))
    assert _queued(store) == []
    acknowledge(site, store, "stale:fc1", "an", t + dt.timedelta(minutes=29, seconds=30))
    assert store.open_alarms()[0]["acked_by"] in ("an", None)
    evaluate(site, store, t + dt.timedelta(minutes=31))
    queued = _queued(store)
    assert queued and ("Chief", "raised", "stale:fc1") not in queued  # acknowledged in time
    assert ("Chief", "raised", "stale:fc2") in queued
    n = len(queued)
    evaluate(site, store, t + dt.timedelta(minutes=40))
    assert len(_queued(store)) == n  # once


def test_quiet_hours_hold_all_but_critical(site_file, tmp_path, store):
    site = _site_with(site_file, tmp_path, """
        [[notify.recipients]]
        name = "Night"
        email = "night@trungtam.example.vn"
        min_severity = "info"
        quiet_hours = "22:00-06:00"
    """)
    night = dt.datetime(2026, 7, 6, 16, 0, tzinfo=UTC)  # 23:00 local
    store.sync_alarms([], night)
    from bems.notify import _rows

    rows = _rows(site, site.notify, "alarm:1", "band:x", "raised", "out_of_band",
                 "warning", "Room", 29.0, night, night, "/alarms/")
    rows += _rows(site, site.notify, "alarm:2", "stale:x", "raised", "stale",
                  "critical", "FC", None, night, night, "/alarms/")
    due = {r["severity"]: r["due"] for r in rows}
    assert due["critical"] == night
    assert due["warning"] == dt.datetime(2026, 7, 6, 23, 0, tzinfo=UTC)  # 06:00 local
    store.enqueue_notifications(rows, night)
    assert [n["severity"] for n in store.due_notifications(night)] == ["critical"]
    assert len(store.due_notifications(dt.datetime(2026, 7, 6, 23, 0, tzinfo=UTC))) == 2


def test_a_flapping_alarm_is_sent_once_per_period(site_file, tmp_path, store):
    site = _site_with(site_file, tmp_path, """
        [[notify.recipients]]
        name = "Ops"
        email = "ops@trungtam.example.vn"
    """, damp=30)
    t = MONDAY_0800
    alarm = {"key": "write:f1.p1.sp", "kind": "write", "severity": "warning",
             "target": "Setpoint", "value": 26.0}
    from bems import notify as n

    def cycle(active: bool, at: dt.datetime) -> None:
        events = store.sync_alarms([alarm] if active else [], at)
        rows = []
        for ev, e in events:
            rows += n._rows(site, site.notify, f"alarm:{e['id']}", e["key"], ev,
                            e["kind"], e["severity"], e["target"], e["value"], at, at, "/")
        # what evaluate does for a raise: skip it within the damping period
        rows = [r for r in rows if r["event"] != "raised" or not (
            (last := store.last_raised(r["key"], r["recipient"], r["channel"])) and
            at - last < dt.timedelta(minutes=30))]
        rows = [r for r in rows if r["event"] == "raised" or
                "raised" in store.notified(r["ref"], r["recipient"], r["channel"])]
        store.enqueue_notifications(rows, at)

    for i in range(10):  # on and off every 2 minutes for 20 minutes, then again an hour later
        cycle(i % 2 == 0, t + dt.timedelta(minutes=2 * i))
    cycle(True, t + dt.timedelta(minutes=80))
    events = [x["event"] for x in reversed(store.notifications())]
    assert events == ["raised", "cleared", "raised"]
    assert len(store.alarm_history()) == 6  # every occurrence is in the log


def test_evaluate_damps_a_flapping_device(centre, relay, hook, clock):
    rt, bus = centre
    for _ in range(3):  # offline 17 minutes, back 1 minute: three times in 54 minutes
        bus.offline.add("fc2")
        step(rt, clock, 17)
        rt.alarms()
        bus.offline.discard("fc2")
        step(rt, clock, 1)
        rt.alarms()
    # raised at +17, +35 and +53 minutes: the second is within 30 minutes of the first
    # message, so neither it nor its clearing is sent; the third is a new period
    told = {(x["ref"], x["event"]) for x in rt.store.notifications()}
    assert told == {("alarm:1", "raised"), ("alarm:1", "cleared"), ("alarm:3", "raised"),
                    ("alarm:3", "cleared")}
    assert len(rt.store.notifications()) == 12  # each on three channels
    assert len([x for x in rt.store.alarm_history() if x["kind"] == "stale"]) == 3


def test_bad_answers_are_clear_errors_and_nothing_is_lost(site_file, tmp_path, hook):
    from bems.site import Recipient

    r = Recipient(name="Hook", webhook=hook.url)
    hook.status = 500
    with pytest.raises(DeliveryError, match="answered 500"):
        post_webhook(r, {"x": 1}, "d1", 2.0)
    hook.status, hook.hang_s = 200, 3.0
    t0 = time.monotonic()
    with pytest.raises(DeliveryError, match="timed out|TimeoutError"):
        post_webhook(r, {"x": 1}, "d2", 1.0)
    assert time.monotonic() - t0 < 2.5
    hook.hang_s, hook.answer_bytes = 0, 10 * 1024 * 1024  # a 10 MB answer: read 64 KB of it
    post_webhook(r, {"x": 1}, "d3", 2.0)
    hook.status = 413
    with pytest.raises(DeliveryError, match="answered 413"):
        post_webhook(r, {"x": 1}, "d4", 2.0)
    unreachable = Recipient(name="Gone", webhook="http://127.0.0.1:9/x")
    with pytest.raises(DeliveryError, match="Connection ?refused|ConnectionRefused"):
        post_webhook(unreachable, {}, "d5", 1.0)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_wrong_password_and_a_refusing_relay_are_clear_errors():
    from bems.site import Notify, Recipient

    relay = Relay(password="right").start()
    try:
        pw = Path(os.environ.get("TMPDIR", "/tmp")) / f"pw-{os.getpid()}"
        pw.write_text("wrong\n")
        r = Recipient(name="A", email="a@trungtam.example.vn")
        nf = Notify(recipients=(r,), smtp=f"smtp://127.0.0.1:{relay.port}", starttls=False,
                    sender="bems@trungtam.example.vn", username="bems", password_file=pw)
        with pytest.raises(DeliveryError, match="refused the user name or password"):
            send_email(nf, r, "s", "t", "<x@bems>")
        pw.write_text("right\n")
        send_email(nf, r, "s", "t", "<y@bems>")
        assert len(relay.wait_for(1)) == 1
        relay.answer = "550 5.1.1 mailbox unavailable"
        with pytest.raises(DeliveryError, match="550"):
            send_email(nf, r, "s", "t", "<z@bems>")
        pw.unlink()
    finally:
        relay.stop()


@pytest.mark.parametrize("bad, message", [
    ('escalate_after_min = nan', "finite"),
    ('escalate_after_min = 1e300', "1..10080"),
    ('email = "a@b\\r\\nBcc: evil@x.vn"', "e-mail address"),
    ('email = "<script>@x.vn"', "e-mail address"),
    ('webhook = "file:///etc/passwd"', "http:// or https://"),
    ('webhook = "http://"', "http:// or https://"),
    ('lang = "fr"', "vi, en"),
    ('min_severity = "panic"', "info, warning, critical"),
    ('quiet_hours = "22:00-22:00"', "HH:MM-HH:MM"),
    ('quiet_hours = "7-9"', "HH:MM-HH:MM"),
    ('name = "x\\u0000y"', "control characters"),
    ('name = ""', "control characters"),
    ('secret_file = "no-such-file"', "no such file"),
])
def test_hostile_recipient_settings_are_refused(site_file, tmp_path, bad, message):
    key = bad.split(" ")[0]
    lines = {"name": 'name = "Ops"', "email": 'email = "ops@trungtam.example.vn"'}
    lines[key] = bad
    text = site_file.read_text(encoding="utf-8") + textwrap.dedent("""
        [notify]
        smtp = "smtp://127.0.0.1:25"
        from = "bems@trungtam.example.vn"
        [[notify.recipients]]
    """) + "\n".join(lines.values()) + "\n"
    with pytest.raises(ConfigError, match=message):
        parse_site(text, source=tmp_path / "s.toml")


@pytest.mark.parametrize("notify, message", [
    ('smtp = "http://relay:25"\nfrom = "a@b.vn"', "smtp://HOST:PORT"),
    ('smtp = "smtp://user:pw@relay:25"\nfrom = "a@b.vn"', "password_file"),
    ('smtp = "smtp://relay:25"', "from address"),
    ('smtp = "smtp://relay:25"\nfrom = "a@b.vn"\nusername = "u"\npassword_file = "pw"',
     "only sent over TLS"),
    ('damp_min = -1', "0..1440"),
])
def test_hostile_relay_settings_are_refused(site_file, tmp_path, notify, message):
    (tmp_path / "pw").write_text("secret")
    text = site_file.read_text(encoding="utf-8") + "\n[notify]\n" + notify + \
        '\n[[notify.recipients]]\nname = "Ops"\nwebhook = "http://127.0.0.1:1/x"\n'
    with pytest.raises(ConfigError, match=message):
        parse_site(text, source=tmp_path / "s.toml")


def test_a_recipient_without_a_channel_and_email_without_a_relay_are_refused(site_file):
    base = site_file.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="an email, a webhook, or both"):
        parse_site(base + '\n[notify]\n[[notify.recipients]]\nname = "Ops"\n')
    with pytest.raises(ConfigError, match="needs \\[notify\\] smtp"):
        parse_site(base + '\n[notify]\n[[notify.recipients]]\nname = "Ops"\n'
                   'email = "a@b.vn"\n')
    with pytest.raises(ConfigError, match="at least one"):
        parse_site(base + '\n[notify]\nsmtp = "smtp://r:25"\nfrom = "a@b.vn"\n')


def test_bems_notify_test_says_which_recipient_failed(site_file, tmp_path, relay, hook):
    text = two_recipients(relay, hook, tmp_path, extra="""
        [[notify.recipients]]
        name = "Broken gateway"
        webhook = "http://127.0.0.1:9/zalo"
    """)
    site = notify_site(site_file, tmp_path, text)
    cmd = [sys.executable, "-m", "bems", "notify", "test", "--site", str(site.source)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 1, res.stderr
    out = res.stdout.splitlines()
    assert "Kỹ thuật trực (email): sent" in out and "Energy officer (email): sent" in out
    assert "Kỹ thuật trực (webhook): sent" in out
    assert any(line.startswith("Broken gateway (webhook): FAILED - webhook 127.0.0.1:")
               for line in out)
    assert len(relay.wait_for(2)) == 2 and len(hook.posts) == 1
    assert relay.messages[0]["Subject"].endswith(")")


def test_an_outage_of_bems_is_told_at_its_next_start(site_file, tmp_path, relay, hook, clock):
    site = notify_site(site_file, tmp_path, two_recipients(relay, hook, tmp_path))
    with Store(tmp_path / "o.sqlite") as store:
        evaluate(site, store, clock.t)
        later = clock.t + dt.timedelta(hours=3)
        assert at_start(site, store, clock.t + dt.timedelta(minutes=5)) == []
        events = at_start(site, store, later)
        down = [e for ev, e in events if e["kind"] == "runtime_down"]
        assert len(down) == 1 and down[0]["raised"] == clock.t and down[0]["cleared"] == later
        assert "08:00 06/07/2026 – 11:00 06/07/2026" == down[0]["target"]
        assert deliver(site, store, later)["events"] >= 3
    assert any("[Khẩn cấp] BEMS đã không chạy: 08:00 06/07/2026 – 11:00 06/07/2026" in
               m.get_content() for m in relay.wait_for(2))
    assert any("[Critical] BEMS was not running: " in m.get_content() for m in relay.messages)


def test_the_alarm_log_keeps_who_acknowledged_and_how_long_it_took(site, store):
    from bems.status import acknowledge

    t = MONDAY_0800
    store.sync_alarms([], t)
    evaluate(site, store, t)  # no data yet: every device is stale
    assert acknowledge(site, store, "stale:fc1", "lan", t + dt.timedelta(minutes=12))
    assert not acknowledge(site, store, "stale:nothing", "lan", t)
    row = next(a for a in store.alarm_history() if a["key"] == "stale:fc1")
    assert row["acked_by"] == "lan" and row["acked"] == t + dt.timedelta(minutes=12)
    summary = store.alarm_summary(t, t + dt.timedelta(days=1))
    assert summary["acknowledged"] == 1 and summary["median_ack_min"] == 12
    assert summary["raised"] == len(store.open_alarms()) >= 5
    assert store.alarm_history(state="unacknowledged") and \
        all(a["acked"] is None for a in store.alarm_history(state="unacknowledged"))


def test_healthz_says_which_job_stopped_without_a_login(site_file, tmp_path, clock):
    from webui import create_app

    site = load_site(site_file)
    rt, bus = runtime(site, clock, tmp_path)
    try:
        app = create_app(site, tmp_path / "rt.sqlite", test_config={"TESTING": True},
                         clock=lambda: clock.t)
        web = app.test_client()
        r = web.get("/healthz")
        assert r.status_code == 503 and r.json["ok"] is False
        assert r.json["jobs"]["poll"] == {"age_s": None, "ok": False}
        rt.poll()
        rt.run_strategies()
        r = web.get("/healthz")
        assert r.status_code == 200, r.json
        assert r.json["data_age_s"] == 0 and r.json["jobs"]["writer"]["ok"]
        assert r.headers["Cache-Control"] == "no-store"
        step(rt, clock, 20)  # polling goes on every minute, the strategy job has stopped
        r = web.get("/healthz")
        assert r.status_code == 503
        assert r.json["jobs"]["poll"]["ok"] and not r.json["jobs"]["strategies"]["ok"]
        assert r.json["jobs"]["strategies"]["age_s"] == 20 * 60
        assert web.get("/alarms/history").status_code == 302  # the rest still needs a login
    finally:
        rt.stop()


@pytest.mark.parametrize("unit", ["bems.service", "bems-web.service"])
def test_the_systemd_units_are_valid(tmp_path, unit):
    import shutil

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    text = (ROOT / "deploy" / unit).read_text(encoding="utf-8")
    bems = Path(sys.executable).with_name("bems")
    assert "/opt/bems/venv/bin/bems" in text and "--site /etc/bems/site.toml" in text
    (tmp_path / unit).write_text(text.replace("/opt/bems/venv/bin/bems", str(bems)))
    res = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)],
                         capture_output=True, text=True, timeout=60)
    problems = [line for line in (res.stdout + res.stderr).splitlines()
                if unit in line and "Failed to" not in line and "bems.service" != line]
    assert not problems, problems
    assert "TimeoutStopSec=" in text and "Restart=on-failure" in text


def test_the_web_process_tells_people_when_the_runtime_stops_polling(centre, relay, hook,
                                                                      clock):
    from bems.notify import STOPPED, watch

    rt, bus = centre
    web_store = Store(rt.store.path)
    try:
        assert watch(rt.site, web_store, clock.t + dt.timedelta(minutes=10), 900)["sent"] == 0
        late = clock.t + dt.timedelta(minutes=16)  # the runtime hangs: no poll for 16 minutes
        assert watch(rt.site, web_store, late, 900) == {"sent": 3, "events": 3, "failed": 0}
        subjects = sorted(m["Subject"] for m in relay.wait_for(2))
        assert subjects[0].startswith("[Critical] BEMS has stopped: no poll since 08:00")
        assert subjects[1].startswith("[Khẩn cấp] BEMS đã dừng: không đọc thiết bị từ 08:00")
        assert watch(rt.site, web_store, late + dt.timedelta(minutes=5), 900)["sent"] == 0
        # the runtime comes back: its start does not tell the outage a second time, and its
        # first evaluation clears the alarm and sends the "resolved" message
        clock.t = late + dt.timedelta(minutes=10)
        rt.poll()
        assert at_start(rt.site, rt.store, clock.t) == []
        assert ("cleared", STOPPED) in [(e, a["key"]) for e, a in rt.alarms()]
        assert rt.notify()["events"] == 3
        assert any("Resolved: BEMS has stopped" in m["Subject"] for m in relay.wait_for(4))
        assert len(relay.messages) == 4
    finally:
        web_store.close()


def test_new_faults_are_told_once_with_their_cost_and_a_backlog_is_not(site_file, tmp_path,
                                                                      relay, hook):
    site = notify_site(site_file, tmp_path, two_recipients(relay, hook, tmp_path).replace(
        'min_severity = "critical"', 'min_severity = "warning"'))
    t = MONDAY_0800

    def fault(target: str, vnd: float) -> dict:
        return {"rule": "ac_after_hours", "target": target, "target_kind": "zone",
                "first": t - dt.timedelta(hours=5), "last": t - dt.timedelta(hours=1),
                "detected": t, "kwh_per_day": 10.0, "vnd_per_day": vnd,
                "discomfort_kh": 0.0, "evidence": {"hours": 4}}

    with Store(tmp_path / "f.sqlite") as store:
        for target, vnd in (("f1.p1", 1000.0), ("f1.p2", 90_000.0)):  # the backlog
            store.record_fault(fault(target, vnd), t)
        evaluate(site, store, t)
        assert not [n for n in store.notifications() if n["ref"].startswith("fault:")]
        new_id = store.record_fault(fault("f3.p4", 45_500.0), t + dt.timedelta(minutes=1))
        evaluate(site, store, t + dt.timedelta(minutes=2))
        evaluate(site, store, t + dt.timedelta(minutes=3))
        told = [n for n in store.notifications() if n["ref"].startswith("fault:")]
        assert {n["ref"] for n in told} == {f"fault:{new_id}"} and len(told) == 3
        deliver(site, store, t + dt.timedelta(minutes=3))
    text = "\n".join(m.get_content() for m in relay.wait_for(2))
    assert "khoảng 45.500 đồng mỗi ngày" in text and "about 45,500 VND a day" in text
