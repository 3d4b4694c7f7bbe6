"""Safe by construction: one regression test per defect an adversarial review found (issue
"Safe by construction", numbered as there), on the in-memory devices, the Flask test client
with CSRF on, and the CLI. Fast tier."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import threading

import pytest

from bems import decision
from bems.cli import main
from bems.config import ConfigError, demo_site_path, parse_site
from bems.control import Writer
from bems.intents import WriteIntent
from connectors.memory import MemoryBus
from bems.overrides import OverrideError, add_override
from bems.schedules import ScheduleError, add_exception, delete_exception, effective_site, from_dict
from bems.site import canonical_address, canonical_object
from bems.storage import Store
from bems.strategies import params as strategy_params
from bems.users import UserError, add_user, set_disabled, set_role
from tests.synthetic import quick_hash, synthetic_db
from bems import state

UTC = dt.timezone.utc
T = dt.datetime(2026, 7, 7, 2, 30, tzinfo=UTC)  # Tuesday 09:30 in Hải Phòng
PASSWORD = "correct horse battery"
BAD_NUMBERS = ("nan", "NaN", "inf", "-inf", "1e300", "1e308", "", "  ", "٣", "26,5,5", "x" * 5000,
               "٢٥", "２５", "2_5", "1,000")


# --- fixtures: a store with a week of synthetic readings, users, the app ---------------------

@pytest.fixture(scope="module")
def db(tmp_path_factory, site):
    path = synthetic_db(tmp_path_factory.mktemp("safety") / "s.sqlite", site,
                        dt.datetime(2026, 7, 7, 9, 30), 8)
    with Store(path) as store:
        for name, role in (("viewer1", "viewer"), ("op1", "operator"), ("admin1", "admin"),
                           ("admin2", "admin")):
            store.add_user(name, role, quick_hash(PASSWORD), "en")
    return path


@pytest.fixture
def store(db):
    s = Store(db)
    yield s
    s.close()


def _app(site, db, csrf=True, secure=False):
    from webui import create_app
    from webui.auth import brake

    brake.clear()
    return create_app(site, db, test_config={"TESTING": True, "WTF_CSRF_ENABLED": csrf},
                      clock=lambda: T)


def _token(page: bytes) -> str:
    m = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    return m.group(1).decode() if m else ""


def _login(client, user, password=PASSWORD, next_=""):
    page = client.get("/login").data
    return client.post("/login" + (f"?next={next_}" if next_ else ""),
                       data={"username": user, "password": password,
                             "csrf_token": _token(page)})


@pytest.fixture
def client(site, db):
    return _app(site, db).test_client()


def _post(client, path, data, page="/"):
    token = _token(client.get(page).data)
    return client.post(path, data={**data, "csrf_token": token})


# --- 1. NaN, inf and 1e300 never reach a device, and never break a page -----------------------

@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_1_writer_refuses_values_that_are_not_finite(site, store, value):
    bus = MemoryBus(site)
    w = Writer(site, bus, store)
    r = w.apply(WriteIntent("f1.p1.sp", value, "hostile"))
    assert r.outcome == "rejected" and "finite" in r.error and bus.writes == []


@pytest.mark.parametrize("value", [1e300, 2.0, 0.5, -1.0])
def test_1_a_binary_point_takes_only_0_or_1(site, store, value):
    bus = MemoryBus(site)
    r = Writer(site, bus, store).apply(WriteIntent("f1.p1.light", value, "hostile"))
    assert r.outcome == "rejected" and bus.writes == []


def test_1_a_read_back_of_nan_is_not_a_confirmation(site, store):
    bus = MemoryBus(site)
    bus.lie["f1.p2.sp"] = math.nan
    r = Writer(site, bus, store).apply(WriteIntent("f1.p2.sp", 26.0, "x"))
    assert r.outcome == "failed"


@pytest.mark.parametrize("value", [math.nan, math.inf, 1e300, 2.0])
def test_1_overrides_of_absurd_values_are_refused(site, store, value):
    point = "f1.p1.light" if value == 2.0 else "f1.p1.sp"
    with pytest.raises(OverrideError):
        add_override(site, store, point, value, T + dt.timedelta(hours=1), "op1", "", T)


def test_1_the_ui_refuses_them_in_both_languages_and_changes_nothing(client, store):
    _login(client, "op1")
    for value in BAD_NUMBERS + ("1e300",):
        r = _post(client, "/overrides/", {"point": "f1.p1.light", "value": value,
                                          "expires": "2026-07-07T11:00"}, "/overrides/")
        assert r.status_code == 400, value
    assert store.overrides() == []


def test_1_pages_render_when_a_device_reports_inf(site, db, client):
    with Store(db) as s:  # a device answered inf and NaN (kept as bad readings, no value)
        s.insert_readings([("f1.p1.temp", T - dt.timedelta(minutes=1), math.inf),
                           ("meter.main.kw", T - dt.timedelta(minutes=1), math.nan)])
        latest = s.latest(now=T)
        assert latest["f1.p1.temp"][1:] == (None, "bad")
    _login(client, "op1")
    for path in ("/", "/zones/", "/overrides/", "/strategies/", "/alarms/", "/trends/"):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("value", [1e20, 3.4e38, -3.4e38])
def test_1_huge_finite_readings_are_bad_kept_raw_and_pages_render(site, db, tmp_path, client,
                                                                   value):
    """A glitch's 1e20, the 3.4e38 some controllers send for "no sensor": finite, and
    absurd. Through the runtime's screen they are bad readings without a value (the raw kept
    for the record); a value stored raw by an older version never breaks a page either."""
    from bems.plausible import Screen

    t = T - dt.timedelta(minutes=1)
    store = Store(tmp_path / "fresh.sqlite")
    store.insert_screened([("f1.p1.temp", t, value), ("meter.main.kw", t, value),
                           ("f1.p2.temp", t, 26.5)], Screen(site))
    latest = store.latest(now=T)
    assert latest["f1.p1.temp"][1:] == (None, "bad")
    assert latest["meter.main.kw"][1:] == (None, "bad")
    assert latest["f1.p2.temp"][1:] == (26.5, "good")
    assert {(p, raw) for _t, p, raw in store.implausible()} == {("f1.p1.temp", value),
                                                              ("meter.main.kw", value)}
    store.close()
    with Store(db) as s:  # an older store holds one as good: charts and pages still render
        s.insert_readings([("f1.p3.temp", t, value), ("meter.main.kw", t - dt.timedelta(
            minutes=5), value)])
        s.refresh_rollups()
    _login(client, "op1")
    for path in ("/", "/zones/", "/zones/f1.p3", "/trends/", "/trends/?point=f1.p3.temp",
                 "/trends/?point=meter.main.kw&days=2", "/forecasts/", "/faults/"):
        assert client.get(path).status_code == 200, path


# --- 2. strategy parameters have ranges; a bad one never stops control ----------------------

@pytest.mark.parametrize("key,value", [("stagger_min", "nan"), ("max_lead_h", "nan"),
                                       ("sweep_after_min", "1e308"),
                                       ("occupied_setpoint", "99"),
                                       ("occupied_setpoint", "24"),
                                       ("corridor_percent", "-5"),
                                       ("peak_target_kw", "inf")])
def test_2_parameters_out_of_range_are_refused(site, store, key, value):
    with pytest.raises(strategy_params.ParamsError):
        strategy_params.save(store, site, {key: value}, "admin1", T)
    assert strategy_params.stored(store, site) == {}


def test_2_a_bad_stored_parameter_is_ignored_and_control_goes_on(site, db):
    with Store(db) as s:
        s.put(state.STRATEGY_PARAMS, {"stagger_min": "nan", "max_lead_h": 1e308,
                                                "corridor_percent": 40.0})
        try:
            eff = effective_site(site, s)
            assert eff.strategies.corridor_percent == 40.0
            assert eff.strategies.stagger_min == site.strategies.stagger_min
            assert decision.decide(site, s, T).intents
        finally:
            s.put(state.STRATEGY_PARAMS, {})


def test_2_the_ui_says_what_is_wrong(client):
    _login(client, "admin1")
    r = _post(client, "/strategies/", {"occupied_setpoint": "99", "occupancy": "on"},
              "/strategies/")
    assert r.status_code == 400 and "outside the range" in r.data.decode()


# --- 3. a strategy switched off releases its points (tests/test_runtime.py) ------------------

# --- 4. the writer never acts above its own priority; addresses and objects canonical --------

def test_4_release_above_own_priority_is_refused(site, store):
    bus = MemoryBus(site)
    bus.objects["f1.p1.sp"].slots.update({8: 24.0, 1: 20.0})  # an operator and a safety
    w = Writer(site, bus, store)
    for prio in (8, 1):
        assert w.release("f1.p1.sp", "cli", "x", prio).outcome == "rejected"
    assert bus.slots("f1.p1.sp") == {8: 24.0, 1: 20.0}
    assert w.release("f1.p1.sp", "cli", "x", 8, above_own=True).outcome == "released"


def test_4_spellings_of_one_point_are_one_point():
    assert canonical_address("localhost:47821") == canonical_address("127.0.0.1:47821")
    assert canonical_address(" 127.000.0.1 :47821") == "127.0.0.1:47821"
    for spelled in ("analog-value,002", "analog-value, 2", "Analog-Value,2", " analog-value ,2"):
        assert canonical_object(spelled) == "analog-value,2"
    assert canonical_object("analog-value,4194303") is None
    assert canonical_address("1.2.3.4:70000") is None
    for bad in ("999.1.1.1:47808", "1.2.3:47808", "", "ä:1", "localhost:1e3", "h" * 300):
        assert canonical_address(bad) is None, bad


def test_4_cli_release_above_own_priority_is_refused_before_the_network(runner, site_file,
                                                                       tmp_path):
    sp = "127.0.0.1:1"  # nothing listens: a refusal must not even try
    r = runner.invoke(main, ["release", sp, "analog-value,2", "--priority", "8", "--site",
                             str(site_file), "--db", str(tmp_path / "l.sqlite"),
                             "--bacnet-port", "0"])
    assert r.exit_code != 0 and "priority 8 is above" in r.output


# --- 5. the policy floor; an acknowledgement belongs to an alarm that exists -----------------

def test_5_an_override_below_the_policy_floor_is_refused(site, store):
    with pytest.raises(OverrideError) as err:
        add_override(site, store, "f1.p1.sp", 24.0, T + dt.timedelta(hours=1), "op1", "", T)
    assert err.value.code == "below_policy_floor"
    loose = dataclasses.replace(site, zones=tuple(dataclasses.replace(z, setpoint_min=None)
                                                  for z in site.zones))
    with pytest.raises(OverrideError):  # no zone minimum: the floor still holds
        add_override(loose, store, "f1.p1.sp", 22.0, T + dt.timedelta(hours=1), "op1", "", T)


def test_5_an_alarm_cannot_be_acknowledged_before_it_exists_and_acks_end_with_it(site, db):
    from bems.status import acknowledge, alarms, prune_acks

    with Store(db) as s:
        assert not acknowledge(site, s, "policy:f1.p1", "op1", T)  # not active
        assert not acknowledge(site, s, "x" * 10_000, "op1", T)
        s.insert_readings([("f1.p1.sp", T - dt.timedelta(minutes=1), 22.0),
                           ("f1.p1.ac", T - dt.timedelta(minutes=1), 1.0)])
        assert "policy:f1.p1" in {a["key"] for a in alarms(site, s, T)}
        assert acknowledge(site, s, "policy:f1.p1", "op1", T)
        later = T + dt.timedelta(minutes=2)
        s.insert_readings([("f1.p1.sp", later - dt.timedelta(seconds=30), 26.0)])
        assert prune_acks(site, s, later) == 1  # cleared: the acknowledgement goes with it
        assert s.get(state.ALARM_ACKS) == {}


# --- 6. the site file refuses what is not finite or not plausible ------------------------------

@pytest.mark.parametrize("find,replace,field", [
    ("policy_min_cooling_setpoint = 25.0", "policy_min_cooling_setpoint = nan",
     "policy_min_cooling_setpoint"),
    ("policy_min_cooling_setpoint = 25.0", "policy_min_cooling_setpoint = 5.0",
     "policy_min_cooling_setpoint"),
    ("setpoint_min = 24.0", "setpoint_min = nan", "setpoint_min"),
    ("min = 18", "min = -inf", "min"),
    ("[control]", "[strategies]\nstagger_min = nan\n\n[control]", "stagger_min"),
    ("retention_days = 400", "retention_days = 1000000000", "retention_days"),
    ("{ from = 2027-02-11, to = 2027-02-12", "{ from = 1900-01-01, to = 9999-12-31",
     "closures[0].from"),
    ("{ from = 2027-02-11, to = 2027-02-12", "{ from = 2027-01-01, to = 2099-12-31",
     "closures[0].to"),
    ("workdays = []", 'workdays = [{ date = 0001-01-01, name = "x" }]', "workdays[0].date"),
    ("valid_from = 2025-05-10", "valid_from = 9999-12-31", "valid_from"),
])
def test_6_check_config_refuses_nan_and_absurd_values(find, replace, field):
    text = open(demo_site_path(), encoding="utf-8").read()
    assert find in text, find
    with pytest.raises(ConfigError) as err:
        parse_site(text.replace(find, replace, 1), "x.toml")
    assert any(i.field.endswith(field) for i in err.value.issues), err.value.issues


# --- 7. the login brake: per account and per address, race-free, no name oracle ---------------

def test_7_a_success_of_another_account_does_not_reset_the_brake(client):
    for _ in range(5):
        assert _login(client, "admin1", "wrong-password").status_code == 401
        assert _login(client, "viewer1").status_code == 302  # a colleague logs in between
        client.post("/logout", data={"csrf_token": _token(client.get("/").data)})
    assert _login(client, "admin1", "wrong-password").status_code == 429
    assert _login(client, "admin1").status_code == 429  # braked, even with the right one


def test_7_one_address_locked_on_one_account_does_not_lock_the_others(client):
    for _ in range(5):
        _login(client, "op1", "wrong-password")
    assert _login(client, "op1", "wrong-password").status_code == 429
    assert _login(client, "viewer1").status_code == 302


def test_7_concurrent_guesses_are_all_counted(site, db, monkeypatch):
    import webui.auth as auth

    app = _app(site, db, csrf=False)
    checked = []
    real = auth.password_ok

    def counting(h, p):
        checked.append(1)
        return real(h, p)

    monkeypatch.setattr(auth, "password_ok", counting)
    codes = []

    def guess():
        with app.test_client() as c:
            codes.append(c.post("/login", data={"username": "admin1",
                                               "password": "guess-123456"}).status_code)

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(checked) <= 5 and codes.count(429) >= 35


def test_7_an_unknown_name_costs_a_password_check_too(site, db, monkeypatch):
    import bems.users as users

    calls = []
    real = users.check_password_hash
    monkeypatch.setattr(users, "check_password_hash",
                        lambda h, p: calls.append(h) or real(h, p))
    c = _app(site, db, csrf=False).test_client()
    c.post("/login", data={"username": "nobody-here", "password": "whatever-123"})
    c.post("/login", data={"username": "admin1", "password": "whatever-123"})
    assert len(calls) == 2  # the same work whether the name exists or not


# --- 8. passwords and accounts ------------------------------------------------------------------

@pytest.mark.parametrize("password", [" " * 12, "a" * 12, "1234567890", "password123",
                                      "short", "x" * 300, "newuser-pass"])
def test_8_weak_passwords_are_refused(store, password):
    with pytest.raises(UserError):
        add_user(store, "newuser", "viewer", password, "vi", "admin1")
    assert store.user("newuser") is None


@pytest.mark.parametrize("name", ["", "   ", "=HYPERLINK(\"http://x\")", "a" * 65, "eve\x00"])
def test_8_bad_user_names_are_refused(store, name):
    with pytest.raises(UserError):
        add_user(store, name, "viewer", "a-good-Passphrase-1", "vi", "admin1")


def test_8_an_existing_name_is_not_overwritten(store):
    before = store.user("op1")["password_hash"]
    with pytest.raises(UserError) as err:
        add_user(store, "op1", "admin", "a-good-Passphrase-1", "vi", "admin1")
    assert err.value.code == "name_taken"
    assert store.user("op1")["password_hash"] == before and store.user("op1")["role"] == "operator"


def test_8_the_last_admin_stays(tmp_path):
    with Store(tmp_path / "u.sqlite") as s:
        add_user(s, "boss", "admin", "a-good-Passphrase-1", "vi", "cli")
        for change in (lambda: set_role(s, "boss", "viewer", "boss"),
                       lambda: set_disabled(s, "boss", True, "boss")):
            with pytest.raises(UserError):
                change()
        add_user(s, "deputy", "admin", "another-Passphrase-2", "vi", "boss")
        set_role(s, "boss", "operator", "deputy")  # another admin exists: allowed


def test_8_the_cli_takes_no_password_on_the_command_line(runner, tmp_path):
    db = str(tmp_path / "u.sqlite")
    r = runner.invoke(main, ["user", "add", "lan", "--role", "operator", "--db", db,
                             "--password", "a-good-Passphrase-1"])
    assert r.exit_code != 0 and "No such option" in r.output
    r = runner.invoke(main, ["user", "add", "lan", "--role", "operator", "--db", db,
                             "--password-stdin"], input="a-good-Passphrase-1\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["user", "add", "lan", "--role", "admin", "--db", db,
                             "--password-stdin"], input="other-Passphrase-9\n")
    assert r.exit_code == 1 and "already" in r.output
    for cmd in (["user", "disable", "lan"], ["user", "enable", "lan"],
                ["user", "delete", "lan"]):
        assert runner.invoke(main, cmd + ["--db", db]).exit_code == 0, cmd
    with Store(db) as s:
        assert s.user("lan") is None
        assert [a["action"] for a in s.audit_rows(10)][:4] == ["user.delete", "user.enable",
                                                               "user.disable", "user.add"]


def test_8_the_demo_does_not_reset_the_admin_password(tmp_path):
    from bems.demo import demo_admin

    with Store(tmp_path / "d.sqlite") as s:
        first = demo_admin(s)
        h = s.user("admin")["password_hash"]
        assert first and demo_admin(s) is None and s.user("admin")["password_hash"] == h


# --- 9. sessions end on the server -------------------------------------------------------------

def test_9_a_replayed_cookie_is_dead_after_logout(site, db):
    app = _app(site, db)
    c = app.test_client()
    _login(c, "op1")
    cookie = c.get_cookie("session").value
    c.post("/logout", data={"csrf_token": _token(c.get("/").data)})
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    r = thief.get("/overrides/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_9_a_password_change_or_disable_ends_sessions(site, db):
    from bems.users import set_password

    c = _app(site, db).test_client()
    _login(c, "viewer1")
    assert c.get("/").status_code == 200
    with Store(db) as s:
        set_password(s, "viewer1", PASSWORD, "admin1")  # (same text, new hash: still ends them)
    assert c.get("/").status_code == 302
    _login(c, "viewer1")
    with Store(db) as s:
        set_disabled(s, "viewer1", True, "admin1")
    assert c.get("/").status_code == 302
    assert _login(c, "viewer1").status_code == 401
    with Store(db) as s:
        set_disabled(s, "viewer1", False, "admin1")


# --- 10. no open redirect -----------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/%09/evil.example", "//evil.example", "/\\evil.example",
                                    "https://evil.example", "/%2F%2Fevil.example",
                                    "%2F%2Fevil.example", "/%0d%0aLocation:%20x"])
def test_10_next_never_leaves_the_site(client, target):
    r = _login(client, "viewer1", next_=target)
    assert r.status_code == 302
    loc = r.headers["Location"]
    assert "evil" not in loc and not loc.startswith("//") and "\n" not in loc


def test_10_a_local_next_is_kept(client):
    assert _login(client, "viewer1", next_="/trends/").headers["Location"].endswith("/trends/")


# --- 11. what users type cannot become a formula, break a file, or drown the events ------------

def test_11_formulas_and_control_characters_are_neutralised_in_exports(site, db, tmp_path):
    from openpyxl import load_workbook

    from bems.reports.monthly import build_monthly
    from bems.reports.render import render

    with Store(db) as s:
        s.audit('=HYPERLINK("http://evil.example","x")', "login.failed", {"address": "1.2.3.4"})
        s.audit("eve\x00\x1b", "exception.add", {"name": "=1+1"})
        add_override(site, s, "f2.p1.sp", 27.0, T + dt.timedelta(hours=1), "op1",
                     "=cmd|' /C calc'!A0", T)
        for _ in range(45):
            s.audit("attacker", "login.failed", {"address": "1.2.3.4"}, T)
        r = build_monthly(site, s, "2026-07")
    whats = [e["what"] for e in r.events]
    assert "override.set" in whats and sum("login.failed" in w for w in whats) <= 2
    xlsx = render(r, "xlsx", tmp_path, "en")
    csv_text = render(r, "csv", tmp_path, "en").read_text(encoding="utf-8")
    for ws in load_workbook(xlsx).worksheets:
        for row in ws.iter_rows(values_only=True):
            for v in row:
                assert not (isinstance(v, str) and v.startswith(("=", "+", "@"))), v
    assert "\n=" not in csv_text and ",=" not in csv_text


def test_11_requests_are_bounded(client):
    r = client.post("/login", data={"username": "x" * (2 * 1024 * 1024), "password": "y"})
    assert r.status_code == 413


# --- 12. headers; cookies follow the transport; a production server --------------------------

def test_12_security_headers(client):
    r = client.get("/login")
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "same-origin"


def test_12_login_works_over_plain_http_on_a_lan_and_cookies_are_secure_over_https(site, db):
    app = _app(site, db)
    for base, secure in (("http://192.168.10.5", False), ("https://bems.local", True)):
        c = app.test_client()
        page = c.get("/login", base_url=base).data
        r = c.post("/login", base_url=base, data={"username": "viewer1", "password": PASSWORD,
                                                  "csrf_token": _token(page)},
                   headers={"Referer": base + "/login"})
        assert r.status_code == 302, (base, r.data[:300])
        cookie = r.headers["Set-Cookie"]
        assert ("Secure" in cookie) == secure and "HttpOnly" in cookie


def test_12_the_ui_is_served_by_a_production_server(site, db):
    import http.client

    from devtools.ports import free_port
    from webui.server import WebServer

    server = WebServer(_app(site, db), "127.0.0.1", free_port()).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server.bind_addr[1], timeout=10)
        conn.request("GET", "/login")
        r = conn.getresponse()
        assert r.status == 200 and "Werkzeug" not in (r.getheader("Server") or "")
        assert r.getheader("X-Frame-Options") == "DENY"
    finally:
        server.stop()


# --- 13. schedules ---------------------------------------------------------------------------

WEEK = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "07:30", "end": "17:00"}


@pytest.mark.parametrize("schedule,code", [
    ({"seasons": []}, "no_seasons"),
    ({"seasons": [{"name": "a", "from": "01-01", "to": "12-31", "periods": []}]}, "no_periods"),
    ({"seasons": [{"name": "a", "from": "01-01", "to": "06-30", "periods": [WEEK]}]},
     "seasons_gap"),
    ({"seasons": [{"name": "a", "from": "01-01", "to": "12-31", "periods": [WEEK]},
                  {"name": "b", "from": "06-01", "to": "06-30", "periods": [WEEK]}]},
     "seasons_overlap"),
    ({"seasons": [{"name": "a", "from": "01-01", "to": "12-31",
                   "periods": [{"days": ["mon"], "start": "24:00", "end": "24:00"}]}]},
     "start_invalid"),
])
def test_13_schedules_that_make_no_sense_are_refused(schedule, code):
    with pytest.raises(ScheduleError) as err:
        from_dict("office", schedule)
    assert code in {c for _, c in err.value.problems}


def test_13_the_overlap_check_is_not_quadratic():
    periods = [{"days": ["mon"], "start": f"{h:02d}:{m:02d}", "end": f"{h:02d}:{m + 1:02d}"}
               for h in range(24) for m in range(0, 58, 2)]  # 696 periods, none overlapping
    s = from_dict("x", {"seasons": [{"name": "a", "from": "01-01", "to": "12-31",
                                     "periods": periods}]})
    assert len(s.seasons[0].periods) == len(periods)


def test_13_one_exception_a_day_and_exceptions_can_be_removed(site, tmp_path):
    with Store(tmp_path / "e.sqlite") as s:
        day = dt.date(2026, 12, 24)
        eid = add_exception(s, day, "closure", "Noel", "op1", T, site)
        with pytest.raises(ScheduleError):
            add_exception(s, day, "workday", "make-up", "op1", T, site)
        assert delete_exception(s, eid, "op1", T)
        assert s.exceptions() == []
        assert [a["action"] for a in s.audit_rows(2)] == ["exception.delete", "exception.add"]


# --- 14. the smaller ones ------------------------------------------------------------------------

def test_14_refused_actions_are_audited(client, db):
    _login(client, "viewer1")
    assert client.get("/users/").status_code == 403
    with Store(db) as s:
        assert s.audit_rows(1)[0]["action"] == "forbidden"


def test_14_trend_csv_file_name_is_safe(client):
    _login(client, "viewer1")
    assert client.get("/trends/csv?point=x%0d%0aSet-Cookie:a=b").status_code == 404
    r = client.get("/trends/csv?point=f1.p1.temp&days=2")
    assert r.headers["Content-Disposition"] == 'attachment; filename="trend-f1.p1.temp-2d.csv"'


@pytest.mark.parametrize("month", ["9999-12", "0000-01", "2026-13", "July", "x" * 1000])
def test_14_a_bad_report_month_is_a_clear_error(client, month):
    _login(client, "op1")
    r = _post(client, "/reports/make", {"month": month}, "/reports/")
    assert r.status_code == 400 and "YYYY-MM" in r.data.decode()


def test_14_cli_override_bounds_heartbeat_and_who(runner, site_file, tmp_path):
    import getpass

    db = str(tmp_path / "o.sqlite")
    r = runner.invoke(main, ["override", "set", "f1.p1.sp", "26", "--minutes", "1e12",
                             "--site", str(site_file), "--db", db])
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = runner.invoke(main, ["override", "set", "bems.heartbeat", "1", "--minutes", "10",
                             "--site", str(site_file), "--db", db])
    assert r.exit_code == 1 and "heartbeat" in r.output
    r = runner.invoke(main, ["override", "set", "f1.p1.sp", "26", "--minutes", "10",
                             "--user", "someone-else", "--site", str(site_file), "--db", db])
    assert r.exit_code == 2  # no --user: the CLI says who you are
    r = runner.invoke(main, ["override", "set", "f1.p1.sp", "26", "--minutes", "10",
                             "--site", str(site_file), "--db", db])
    assert r.exit_code == 0 and "Asia/Ho_Chi_Minh" in r.output
    with Store(db) as s:
        assert s.overrides()[0]["created_by"] == "cli:" + getpass.getuser()


def test_14_override_reasons_say_local_time(site, store):
    from bems.calendar import SiteCalendar
    from bems.strategies.plan import Learned, Override, plan

    ov = Override("f1.p1.sp", 27.0, T + dt.timedelta(hours=1), "op1", "meeting")
    local = T.astimezone(site.tz).replace(tzinfo=None)
    d = plan(site, SiteCalendar(site), {}, local, Learned(), 0, [ov], now_aware=T)
    reason = next(i.reason for z in d for i in z.intents if i.point == "f1.p1.sp")
    assert "until 10:30" in reason  # 03:30 UTC is 10:30 in Hải Phòng


def test_12_https_served_by_bems_itself(site, db, tmp_path):
    import http.client
    import shutil
    import ssl
    import subprocess

    from devtools.ports import free_port
    from webui.server import WebServer

    if not shutil.which("openssl") and not __import__("os").environ.get("CI"):
        pytest.skip("openssl not installed")
    crt, key = tmp_path / "bems.crt", tmp_path / "bems.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    server = WebServer(_app(site, db, csrf=False), "127.0.0.1", free_port(), crt, key).start()
    try:
        assert server.url.startswith("https://")
        tls = ssl.create_default_context(cafile=str(crt))
        conn = http.client.HTTPSConnection("127.0.0.1", server.server.bind_addr[1],
                                           context=tls, timeout=10)
        conn.request("POST", "/login", body="username=viewer1&password=correct+horse+battery",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        assert r.status == 302
        assert "Secure" in r.getheader("Set-Cookie") and r.getheader("Strict-Transport-Security")
        plain = http.client.HTTPConnection("127.0.0.1", server.server.bind_addr[1], timeout=5)
        try:  # no page over plain HTTP on that port
            plain.request("GET", "/login")
            assert plain.getresponse().status != 200
        except (OSError, http.client.HTTPException):
            pass
    finally:
        server.stop()


def test_a_wrong_controller_clock_shows_as_an_alarm_in_both_languages(site, db, client):

    with Store(db) as s:
        s.put(state.CONTROLLER_CLOCKS, {"at": T.isoformat(), "drift_s": {"fc2": 900}})
    try:
        _login(client, "op1")
        assert "minutes off" in client.get("/alarms/").data.decode()
        _post(client, "/lang/vi", {}, "/alarms/")
        assert "lệch 15" in client.get("/alarms/").data.decode()
        _post(client, "/lang/en", {}, "/alarms/")
    finally:
        with Store(db) as s:
            s.put(state.CONTROLLER_CLOCKS, {})
