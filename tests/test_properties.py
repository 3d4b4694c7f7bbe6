"""Property-based tests (Hypothesis): whatever crosses a boundary — a site file, a schedule, a
strategy parameter, an override, a form, an intent — gives a clear error or a valid result;
never a crash, and never a non-finite or out-of-limit value at a device. Fast tier."""

from __future__ import annotations

import datetime as dt
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bems.config import ConfigError, demo_site_path, parse_site
from bems.control import Writer
from bems.intents import WriteIntent
from connectors.memory import MemoryBus
from bems.overrides import OverrideError, check_override
from bems.schedules import ScheduleError, from_dict
from bems.strategies import params as strategy_params
from bems.strategies.params import RANGES, StrategyParams

T = dt.datetime(2026, 7, 7, 2, 30, tzinfo=dt.timezone.utc)
FAST = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**20, 10**20)


# --- the site file ---------------------------------------------------------------------------

DEMO = open(demo_site_path(), encoding="utf-8").read()
VALUES = list(re.finditer(r"^(\w+) = (.+)$", DEMO, re.M))


@FAST
@given(st.integers(0, len(VALUES) - 1),
       st.sampled_from(["nan", "inf", "-inf", "1e300", '""', "[]", "{}", "-1", "0", "true",
                        '"x"', "99999999999", '"' + "é" * 2000 + '"', "1979-05-27", '"24:00"',
                        '"mon-sun"', "[nan]", '"127.0.0.1:0"', '"analog-value,99999999"']))
def test_any_value_in_the_site_file_is_an_error_or_a_site(i, value):
    m = VALUES[i]
    text = DEMO[:m.start(2)] + value + DEMO[m.end(2):]
    try:
        site = parse_site(text, "x.toml")
    except ConfigError as err:
        assert err.issues and all(issue.message for issue in err.issues)
        return
    floats = [site.control.policy_min_cooling_setpoint, *(p.min or 0 for p in site.points),
              *(p.max or 0 for p in site.points), *(z.setpoint_min or 0 for z in site.zones)]
    assert all(math.isfinite(x) for x in floats)


# --- schedules, parameters, overrides ---------------------------------------------------------

period = st.fixed_dictionaries({"days": anything | st.lists(st.sampled_from(
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "xx"]), max_size=8),
    "start": anything | st.from_regex(r"\d{1,2}:\d{2}", fullmatch=True),
    "end": anything | st.from_regex(r"\d{1,2}:\d{2}", fullmatch=True)})
season = st.fixed_dictionaries({"name": anything, "from": anything | st.just("01-01"),
                                "to": anything | st.just("12-31"),
                                "periods": st.lists(period, max_size=5) | anything})


@FAST
@given(st.fixed_dictionaries({"name": anything, "seasons": st.lists(season, max_size=3)})
       | anything)
def test_any_schedule_is_an_error_or_a_schedule(d):
    try:
        s = from_dict("office", d)
    except ScheduleError as err:
        assert err.problems
        return
    assert s.seasons and all(p.start < (p.end if p.end != dt.time(0) else dt.time.max)
                             for x in s.seasons for p in x.periods)


@FAST
@given(st.dictionaries(st.sampled_from(list(StrategyParams.field_types())) | st.text(max_size=5),
                       anything | numbers | st.text(max_size=12), max_size=6), st.booleans())
def test_any_parameters_are_refused_or_finite_and_in_range(values, from_form):
    clean, problems = strategy_params.validate(values, 25.0, from_form=from_form)
    for k, v in clean.items():
        for x in (v if isinstance(v, tuple) else (v,)):
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                assert math.isfinite(x)
                if k in RANGES:
                    assert RANGES[k][0] <= x <= RANGES[k][1], (k, x)
    if not problems:
        StrategyParams(**clean)


@FAST
@given(st.data(), numbers, st.floats(-1e6, 1e6))
def test_any_override_is_refused_or_sane(site, data, value, minutes):
    point = data.draw(st.sampled_from([p.id for p in site.points] + ["nope", ""]))
    try:
        expires = T + dt.timedelta(minutes=minutes)
        v, _ = check_override(site, point, value, expires, T)
    except OverrideError as err:
        assert err.code
        return
    p = site.point(point)
    assert math.isfinite(v) and p.writable
    assert (p.min is None or v >= p.min) and (p.max is None or v <= p.max)
    if p.kind == "setpoint":
        assert v >= site.control.policy_min_cooling_setpoint


# --- the writer: nothing absurd reaches a device -----------------------------------------------

@FAST
@given(st.data())
def test_whatever_is_asked_the_devices_only_see_sane_values(site, tmp_path_factory, data):
    from bems.storage import Store

    bus = MemoryBus(site)
    with Store(tmp_path_factory.mktemp("w") / "w.sqlite") as store:
        w = Writer(site, bus, store)
        writable = [p.id for p in site.points if p.writable]
        for _ in range(data.draw(st.integers(1, 15))):
            point = data.draw(st.sampled_from(writable + ["f1.p1.temp", "nope"]))
            value = data.draw(numbers | st.none())
            prio = data.draw(st.none() | st.integers(-3, 20))
            w.apply(WriteIntent(point, value, "property test", priority=prio))
    floor = site.control.write_priority
    for pid, value, prio in bus.writes:
        p = site.point(pid)
        assert prio >= floor
        if value is not None:
            assert math.isfinite(value)
            assert (p.min is None or value >= p.min) and (p.max is None or value <= p.max)
            if p.object_type.startswith("binary"):
                assert value in (0.0, 1.0)


# --- the forms: never a server error ------------------------------------------------------------

@pytest.fixture(scope="module")
def ui(site, tmp_path_factory):
    from bems.storage import Store
    from bems.users import hash_password
    from tests.synthetic import synthetic_db
    from webui import create_app

    db = synthetic_db(tmp_path_factory.mktemp("ui") / "u.sqlite", site,
                      dt.datetime(2026, 7, 7, 9, 30), 1)
    with Store(db) as s:
        s.add_user("admin1", "admin", hash_password("correct horse battery"), "en")
    app = create_app(site, db, test_config={"TESTING": True, "WTF_CSRF_ENABLED": False},
                     clock=lambda: T)
    c = app.test_client()
    c.post("/login", data={"username": "admin1", "password": "correct horse battery"})
    assert c.get("/users/").status_code == 200  # logged in as admin: the forms are reached
    return c


text = st.text(max_size=40) | st.sampled_from(["nan", "inf", "1e308", "-0", "26,5", "٢٦"])


@FAST
@given(st.dictionaries(st.sampled_from(["point", "value", "expires", "reason"]), text,
                       max_size=4))
def test_the_override_form_never_fails(ui, form):
    assert ui.post("/overrides/", data=form).status_code in (302, 400)


@FAST
@given(st.dictionaries(st.sampled_from(["occupied_setpoint", "stagger_min", "max_lead_h",
                                        "break_ac", "corridor_percent", "peak_target_kw",
                                        "sweep_after_min", "lighting"]), text, max_size=5))
def test_the_strategies_form_never_fails(ui, form):
    assert ui.post("/strategies/", data=form).status_code in (302, 400)
    assert ui.get("/strategies/").status_code == 200


@FAST
@given(st.dictionaries(st.sampled_from(["day", "kind", "name", "month", "key", "point",
                                        "days"]), text, max_size=4))
def test_other_forms_never_fail(ui, form):
    for path in ("/schedules/exceptions", "/reports/make", "/alarms/ack"):
        assert ui.post(path, data=form).status_code in (302, 400, 404)
    assert ui.get("/trends/csv", query_string=form).status_code in (200, 404)
