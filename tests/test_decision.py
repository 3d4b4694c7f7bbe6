"""One decision path: the runtime, `bems strategies dry-run` and the web preview give the same
intents for the same store and time — stored schedule edits, strategy parameters, overrides,
learned rates and the demand level included."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest

from bems import decision
from bems.cli import main
from connectors.memory import MemoryBus
from bems.overrides import add_override
from bems.runtime import Runtime
from bems.schedules import from_dict, save, to_dict
from bems.storage import Store
from bems.strategies import params as strategy_params
from bems.strategies.plan import Learned
from tests.synthetic import quick_hash, synthetic_db
from bems import state

AT_LOCAL = dt.datetime(2026, 7, 7, 9, 0)  # a Tuesday, offices occupied


@pytest.fixture(scope="module")
def db(tmp_path_factory, site):
    path = synthetic_db(tmp_path_factory.mktemp("decision") / "d.sqlite", site, AT_LOCAL, 2)
    at = AT_LOCAL.replace(tzinfo=site.tz)
    with Store(path, site.timezone) as store:
        # an operator's edit of the offices' schedule, an admin's parameters, an override,
        # learned rates and a demand level from an earlier run: every input of the planner
        office = to_dict(site.schedule("office"))
        office["seasons"][0]["periods"][0]["start"] = "06:30"
        save(store, site, from_dict("office", office), "op", at)
        store.put(state.STRATEGY_PARAMS, {"peak_target_kw": 120.0,
                                                    "corridor_percent": 40.0})
        add_override(site, store, "f2.p3.sp", 27.0, at + dt.timedelta(hours=2), "lan",
                     "meeting", at - dt.timedelta(minutes=5))
        learned = Learned()
        learned.cool["f1.p1"] = [("2026-07-06", 3.5)]
        decision.save_learned(store, learned)
        store.put(state.DEMAND_LEVEL, 1)
        # a warm morning: the zones need cooling (the planner's occupied mode)
        store.insert_readings([(z.temperature, at - dt.timedelta(minutes=5), 27.5)
                               for z in site.zones])
        store.add_user("admin1", "admin", quick_hash("correct horse battery"), "en")
    return path


def _web(site, db, at):
    from webui import create_app

    app = create_app(site, db, test_config={"TESTING": True, "SESSION_COOKIE_SECURE": False,
                                             "WTF_CSRF_ENABLED": False}, clock=lambda: at)
    c = app.test_client()
    c.post("/login", data={"username": "admin1", "password": "correct horse battery"})
    page = c.get("/strategies/").data.decode()
    # the page shows names and plain words; each row also carries what was decided, as is
    rows = re.findall(r'data-zone="([^"]*)" data-mode="([^"]*)" data-point="([^"]*)" '
                      r'data-value="([^"]*)" data-reason="([^"]*)"', page)
    level = int(re.search(r'data-level="(\d+)"', page).group(1))
    return level, sorted((z, m, p, float(v), html.unescape(r)) for z, m, p, v, r in rows)


def _cli(runner, site_file, db):
    r = runner.invoke(main, ["strategies", "dry-run", "--site", str(site_file), "--db", str(db),
                             "--at", AT_LOCAL.strftime("%Y-%m-%dT%H:%M")])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    level = int(re.search(r"demand level (\d+)", lines[0]).group(1))
    rows = []
    for line in lines[1:]:
        zone, mode, point, value, reason = line.split(None, 4)
        rows.append((zone, mode, point, float(value), reason))
    return level, sorted(rows)


def test_runtime_cli_and_web_decide_the_same(site, site_file, db, runner, tmp_path):
    at = AT_LOCAL.replace(tzinfo=site.tz)
    rt = Runtime(site, db, bus=MemoryBus(site), clock=lambda: at, dry_run=True)
    try:
        d = rt.decide()
    finally:
        rt.store.close()
    runtime = (d.level, sorted((z.zone, z.mode, i.point, float(i.value), i.reason)
                               for z in d.zones for i in z.intents))
    assert runtime[1], "the planner decided nothing"
    assert runtime == _cli(runner, site_file, db)
    assert runtime == _web(site, db, at)
    # the inputs really were used: the override, the stored parameters, the demand level
    rows = runtime[1]
    assert ("f2.p3", "override", "f2.p3.sp", 27.0) in [r[:4] for r in rows]
    assert runtime[0] >= 1 and any("demand limit level" in r[4] for r in rows)
