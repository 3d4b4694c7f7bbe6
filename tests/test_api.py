"""The read API (/api/v1/) on a store of synthetic readings: its OpenAPI description checked by
a validator, bearer tokens (none, wrong, expired, revoked, a session cookie), readings equal to
the store at every resolution and across pages, CSV, hostile parameters (4xx JSON, never 5xx),
the rate limit, use counted per day, and `bems token`."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from urllib.parse import urlsplit

import pytest

from bems import tokens
from bems.storage import Store
from devtools.clock import Clock
from tests.synthetic import quick_hash, synthetic_db
from webui import create_app

NOW = dt.datetime(2026, 7, 7, 2, 30, tzinfo=dt.timezone.utc)  # Tuesday 09:30 in Hải Phòng


@pytest.fixture(scope="module")
def api_db(tmp_path_factory, site):
    db = synthetic_db(tmp_path_factory.mktemp("api") / "api.sqlite", site,
                      dt.datetime(2026, 7, 7, 9, 30), 8)
    with Store(db) as s:
        s.add_user("viewer1", "viewer", quick_hash("correct horse battery"), "en")
    return db


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
def client(site, api_db, clock):
    app = create_app(site, api_db, test_config={"TESTING": True, "SESSION_COOKIE_SECURE": False,
                                                "WTF_CSRF_ENABLED": False}, clock=clock)
    return app.test_client()


NAMES = itertools.count(1)


@pytest.fixture
def named_token(api_db, clock):
    """(name, token) of a new read token."""
    name = f"t{next(NAMES)}"
    with Store(api_db) as s:
        return name, tokens.create(s, name, "read", clock.t)


@pytest.fixture
def token(named_token):
    return named_token[1]


def auth(t: str) -> dict:
    return {"Authorization": f"Bearer {t}"}


def test_the_openapi_description_is_valid_and_names_every_endpoint(client):
    from openapi_spec_validator import validate

    spec = client.get("/api/v1/openapi.json").json
    validate(spec)
    assert {"/api/v1/points", "/api/v1/readings", "/api/v1/energy", "/api/v1/zones",
            "/api/v1/alarms", "/api/v1/faults", "/api/v1/writes",
            "/api/v1/forecasts"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_no_wrong_expired_or_revoked_token_is_401_and_a_session_is_not_a_token(
        client, api_db, clock, named_token):
    name, token = named_token
    assert client.get("/api/v1/points").status_code == 401
    assert client.get("/api/v1/points", headers=auth("bems_nope")).status_code == 401
    assert client.get("/api/v1/points", headers={"Authorization": "Basic dTpw"}
                      ).status_code == 401
    ok = client.get("/api/v1/points", headers=auth(token))
    assert ok.status_code == 200
    p = next(p for p in ok.json if p["id"] == "f1.p1.temp")
    assert p["zone"] == "f1.p1" and p["kind"] == "temperature" and p["unit"]
    with Store(api_db) as s:
        short = tokens.create(s, "short", "read", clock.t, expires_days=1)
    assert client.get("/api/v1/points", headers=auth(short)).status_code == 200
    clock.t += dt.timedelta(days=1, seconds=1)
    r = client.get("/api/v1/points", headers=auth(short))
    assert r.status_code == 401 and r.json["code"] == 401 and "expired" in r.json["message"]
    with Store(api_db) as s:
        assert s.revoke_token(name, clock.t)
    assert client.get("/api/v1/points", headers=auth(token)).status_code == 401
    # a logged-in viewer's session cookie opens the screens, not the API
    page = client.get("/login").data
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    client.post("/login", data={"username": "viewer1", "password": "correct horse battery",
                                "csrf_token": csrf.group(1).decode() if csrf else ""})
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/points").status_code == 401


@pytest.mark.parametrize("res, level", [("15m", "15min"), ("hour", "hour"), ("day", "day")])
def test_rollups_from_the_api_equal_the_store(client, api_db, token, res, level):
    frm, to = "2026-07-01T00:00:00+07:00", "2026-07-07T00:00:00+07:00"
    r = client.get(f"/api/v1/readings?point=f2.p1.temp&res={res}&from={frm}&to={to}",
                   headers=auth(token))
    assert r.status_code == 200 and r.json["next"] is None
    with Store(api_db) as s:
        want = list(s.rollups(level, ["f2.p1.temp"], dt.datetime.fromisoformat(frm),
                              dt.datetime.fromisoformat(to)))
    assert [(dt.datetime.fromisoformat(i["time"]), i["mean"], i["n"]) for i in r.json["items"]] \
        == [(w["bucket"], w["mean"], w["n"]) for w in want]
    assert len(want) > 5


def test_raw_readings_across_pages_equal_the_store(client, api_db, token):
    url = ("/api/v1/readings?point=f2.p1.temp&from=2026-07-05T00:00:00%2B07:00"
           "&to=2026-07-06T00:00:00%2B07:00&limit=40")
    got, pages = [], 0
    while url:
        r = client.get(url, headers=auth(token))
        assert r.status_code == 200, r.json
        got += [(dt.datetime.fromisoformat(i["time"]), i["value"]) for i in r.json["items"]]
        nxt = r.json["next"]
        if nxt:
            assert r.headers["Link"] == f'<{nxt}>; rel="next"'
            u = urlsplit(nxt)
            url = f"{u.path}?{u.query}"
        else:
            url = None
        pages += 1
    with Store(api_db) as s:
        want = [(t, v) for t, v, _q in s.readings(
            "f2.p1.temp", dt.datetime(2026, 7, 4, 17, tzinfo=dt.timezone.utc),
            dt.datetime(2026, 7, 5, 17, tzinfo=dt.timezone.utc))]
    assert got == want and len(want) == 96 and pages == 3


def test_csv_when_asked_and_energy_by_day(client, token):
    r = client.get("/api/v1/readings?point=f2.p1.temp&res=hour", headers={
        **auth(token), "Accept": "text/csv"})
    assert r.mimetype == "text/csv"
    lines = r.data.decode().splitlines()
    assert lines[0] == "time,mean,min,max,n" and len(lines) == 25
    e = client.get("/api/v1/energy?meter=main&res=day&from=2026-07-01&to=2026-07-07",
                   headers=auth(token))
    assert e.status_code == 200 and e.json["unit"] == "kWh"
    assert [i["time"][:10] for i in e.json["items"]] == [f"2026-07-0{d}" for d in range(1, 7)]
    assert all(i["kwh"] > 0 for i in e.json["items"])


def test_zones_alarms_faults_writes_forecasts(client, token):
    zones = client.get("/api/v1/zones", headers=auth(token)).json
    assert {z["id"] for z in zones} >= {"f1.p1", "f3.core"}
    assert all(isinstance(z["temperature"], float) for z in zones)
    for path in ("/api/v1/alarms", "/api/v1/faults?status=all&days=30", "/api/v1/writes",
                 "/api/v1/forecasts"):
        r = client.get(path, headers=auth(token))
        assert r.status_code == 200 and r.is_json, path


HOSTILE = ["point=nan", "point=" + "x" * 5000, "point=f2.p1.temp&limit=1e300",
           "point=f2.p1.temp&limit=nan", "point=f2.p1.temp&limit=-1",
           "point=f2.p1.temp&from=2026-13-01", "point=f2.p1.temp&from=nan",
           "point=f2.p1.temp&from=inf", "point=f2.p1.temp&to=1900-01-01",
           "point='; DROP TABLE readings;--", "point=%00", "point=f2.p1.temp%00",
           "point=f2.p1.temp&res=week", "point=f2.p1.temp&from=2026-07-07&to=2026-07-01",
           "point=f2.p1.temp&from=2000-01-01&to=2100-01-01", "", "point="]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_parameters_are_4xx_json_never_5xx(client, token, query):
    for path in ("/api/v1/readings", "/api/v1/energy", "/api/v1/writes", "/api/v1/faults",
                 "/api/v1/forecasts"):
        q = query.replace("point=", "meter=") if path.endswith(("energy", "forecasts")) \
            else query
        r = client.get(f"{path}?{q}", headers=auth(token))
        assert r.status_code < 500 and r.is_json, (path, q, r.status_code)
        if path.endswith("readings"):
            assert 400 <= r.status_code < 500 and r.json["message"], (q, r.json)


def test_a_token_is_rate_limited_and_its_use_counted_by_day(client, api_db, named_token,
                                                             monkeypatch):
    name, token = named_token
    from webui import api

    monkeypatch.setattr(api, "RATE_PER_MIN", 5)
    api._calls.clear()
    codes = [client.get("/api/v1/points", headers=auth(token)).status_code for _ in range(7)]
    assert codes == [200] * 5 + [429] * 2
    with Store(api_db) as s:
        t = next(x for x in s.tokens() if x["name"] == name)
        assert t["uses"] == {"2026-07-07": 5} and t["last_used"] == NOW  # the calls served
        assert any(a["action"] == "token.create" for a in s.audit_rows(limit=50))
        used = [a for a in s.audit_rows(limit=200, action="token.use")
                if a["user"] == f"token:{name}"]
        assert len(used) == 1  # the day's first use, once
    api._calls.clear()


def test_bems_token_create_list_revoke(tmp_path, runner):
    from bems.cli import main

    db = tmp_path / "t.sqlite"

    def run(*args):
        return runner.invoke(main, ["token", *args, "--db", str(db)])

    made = run("create", "grafana", "--expires", "30")
    assert made.exit_code == 0 and made.output.startswith("bems_")
    secret = made.output.strip()
    listed = run("list")
    assert "grafana\tread\tactive" in listed.output and secret not in listed.output
    assert run("create", "grafana").exit_code == 1  # one name, one token
    assert run("create", "bad name!").exit_code == 1
    assert run("create", "x", "--expires", "0").exit_code != 0
    assert run("revoke", "grafana").exit_code == 0
    assert "grafana\tread\trevoked" in run("list").output
    assert run("revoke", "grafana").exit_code == 1
    with Store(db) as s:
        assert tokens.check(s, secret, dt.datetime.now(dt.timezone.utc)) is None
        assert secret not in str(s.db.execute("SELECT * FROM api_tokens").fetchall())


def test_an_admin_sees_and_revokes_tokens_on_the_users_screen(site, api_db, clock, named_token):
    name, token = named_token
    app = create_app(site, api_db, test_config={"TESTING": True, "SESSION_COOKIE_SECURE": False},
                     clock=clock)
    c = app.test_client()
    with Store(api_db) as s:
        s.add_user("admin9", "admin", quick_hash("correct horse battery"), "vi")
    page = c.get("/login").data
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
    c.post("/login", data={"username": "admin9", "password": "correct horse battery",
                           "csrf_token": csrf})
    users = c.get("/users/").data.decode()
    assert "Mã truy cập API" in users and f"<td>{name}</td>" in users and token not in users
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', users).group(1)
    r = c.post("/users/tokens/revoke", data={"name": name, "csrf_token": csrf})
    assert r.status_code == 302
    assert c.get("/api/v1/points", headers=auth(token)).status_code == 401
    assert c.post("/users/tokens/revoke", data={"name": name, "csrf_token": csrf}
                  ).status_code == 400
