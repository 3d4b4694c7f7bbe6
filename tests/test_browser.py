"""The UI in a real headless Chromium (Debian's), against `bems demo` on the virtual centre."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"

# CI installs Debian's chromium (the README's test command); only elsewhere may it be missing
pytestmark = [pytest.mark.bacnet, pytest.mark.energyplus, pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                 reason="Debian chromium missing (apt-get install chromium)")]


# Time is an input: the demo's simulated clock starts at a moment this module chooses, never
# the wall clock's (a suite started on the 4th of a month had no "last month" to report on; one
# started late in the afternoon reached the evening before the tasks did). A working Thursday
# morning, the 1st of the month: three days of history hold the end of last month.
START = dt.datetime(2026, 10, 1, 9, 0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, site_file):
    from bems.demo import run_demo
    from devtools.ports import free_port

    db = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    ready, stop, handle, errors = threading.Event(), threading.Event(), {}, []
    handle["port"] = free_port()

    def run():
        try:
            # the cadence of `bems demo --speed 60`: BEMS polls once a simulated minute
            run_demo(db, history_days=3, speed=60, port=handle["port"], bacnet_port=free_port(),
                     ready=ready, stop=stop, handle=handle, site_file=site_file, start=START)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)
            ready.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(240), "demo did not start"
    if errors:
        raise errors[0]
    yield handle
    stop.set()
    t.join(60)
    if t.is_alive() or errors:  # shown in the warnings summary, never silent
        import warnings

        warnings.warn(f"the demo did not stop cleanly: alive={t.is_alive()} errors={errors!r}")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def _admin_page(demo, browser, locale: str, viewport: dict):
    """A new page logged in as the demo's admin, and the demo's address."""
    page = browser.new_page(locale=locale, accept_downloads=True, viewport=viewport)
    base = f"http://127.0.0.1:{demo['port']}"
    page.goto(base + "/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", demo["password"])
    page.click("button[type=submit]")
    return page, base


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _wait(cond, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.3)
    return cond()


def test_demo_opens_on_its_history_with_its_faults_found(demo):
    """What a facility manager sees first: rooms as warm as the history left them (the median
    jump between the last stored reading and the first polled one is at most 1 K), and the
    faults injected into the history already on the faults screen."""
    import statistics

    from bems.storage import Store
    from connectors.simulator.faults import FAULT_TYPES, demo_faults

    runtime = demo["runtime"]
    site = runtime.site
    start = START.replace(tzinfo=site.tz)
    with Store(runtime.db, site.timezone, migrate=False) as store:
        jumps = []
        for z in site.zones:
            if not z.temperature:
                continue
            before = store.readings(z.temperature, start - dt.timedelta(hours=1), start)
            after = store.readings(z.temperature, start, start + dt.timedelta(hours=1))
            assert before and after, z.id
            jumps.append(abs(after[0][1] - before[-1][1]))
        found = {(f["rule"], f["target"]) for f in store.faults(since=start - dt.timedelta(
            days=7), status=None)}
    assert statistics.median(jumps) <= 1.0, sorted(jumps)
    wanted = {(FAULT_TYPES[i.kind].rule, i.target) for i in demo_faults(site, START, 3)}
    assert len(wanted) == 4
    assert wanted <= found, (wanted - found, found)


def test_facility_manager_day(demo, browser, tmp_path):
    from bems.calendar import SiteCalendar

    centre, runtime = demo["centre"], demo["runtime"]
    site = runtime.site
    page = browser.new_page(locale="en-GB", accept_downloads=True,
                            viewport={"width": 1280, "height": 900})
    base = f"http://127.0.0.1:{demo['port']}"
    page.goto(base + "/")
    assert "/login" in page.url
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", demo["password"])
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Tổng quan')")  # the admin's language: Vietnamese
    page.click("#lang-en")
    page.wait_for_selector("h1:has-text('Overview')")
    # at 60x the demo shows live data: a power figure, and no device without data
    def live() -> bool:
        page.reload()
        return any(c.isdigit() for c in page.inner_text("#kw-now"))
    assert _wait(live, 30), page.inner_text("#kw-now")
    assert "No data from" not in page.inner_text("body")
    _shot(page, "overview-en")
    page.goto(base + "/zones/")
    _shot(page, "zones-en")
    # live: the page updates itself (no reload) as the simulated centre moves on
    first = page.get_attribute("#live-time", "data-updated")
    assert _wait(lambda: page.get_attribute("#live-time", "data-updated") not in (None, first),
                 25), "the zones page did not refresh its values"

    # change the weekly schedule so the offices' state flips now (occupied <-> not): the
    # zone's lights and setpoint in the virtual centre must follow
    local = centre.sim_now
    cal = SiteCalendar(site)
    assert cal.is_workday(local.date()) and local.hour < 16, local  # the module's START
    occupied_before = cal.occupied("office", local)
    page.goto(base + "/schedules/office")
    _shot(page, "schedule-editor-en")
    season = next(i for i, s in enumerate(site.schedule("office").seasons)
                  if s.contains(local.date()))
    for box in page.query_selector_all(f"input[name^=s{season}_p][name$=_start], "
                                       f"input[name^=s{season}_p][name$=_end]"):
        box.fill("")
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    if not occupied_before:  # one period around now, today only
        start = max(local - dt.timedelta(hours=1), local.replace(hour=0, minute=0))
        end = local + dt.timedelta(hours=3)
        end_s = "24:00" if end.date() != local.date() else end.strftime("%H:%M")
        page.fill(f"input[name=s{season}_p0_start]", start.strftime("%H:%M"))
        page.fill(f"input[name=s{season}_p0_end]", end_s)
        page.check(f"input[name=s{season}_p0_{days[local.weekday()]}]")
    else:  # a season needs a period: one on another day, so today is closed
        page.fill(f"input[name=s{season}_p0_start]", "07:30")
        page.fill(f"input[name=s{season}_p0_end]", "08:00")
        page.check(f"input[name=s{season}_p0_{days[(local.weekday() + 3) % 7]}]")
    page.click("#save-schedule")
    try:
        page.wait_for_selector("text=Schedule saved")
    except Exception:
        _shot(page, "schedule-save-failed")
        raise AssertionError(page.inner_text("body")[:3000]) from None
    want_light = 0.0 if occupied_before else 1.0
    assert _wait(lambda: centre.devices.priority_array("f2.p1.light") == {12: want_light}, 30), \
        centre.devices.priority_array("f2.p1.light")
    if not occupied_before:
        assert centre.devices.priority_array("f2.p1.sp") == {12: 26.0}  # occupied setpoint
    else:  # closed now: AC off
        assert _wait(lambda: centre.devices.priority_array("f2.p1.ac") == {12: 0.0}, 30)

    # an override with an expiry, then watch it go
    page.goto(base + "/overrides/")
    page.select_option("select[name=point]", "f2.p1.light")
    page.fill("input[name=value]", "1" if want_light == 0.0 else "0")
    expires = centre.sim_now + dt.timedelta(minutes=20)  # 20 s of wall time at 60x
    page.fill("input[name=expires]", expires.strftime("%Y-%m-%dT%H:%M"))
    page.fill("input[name=reason]", "browser test")
    page.click("#override-form button[type=submit]")
    page.wait_for_selector("text=Override set")
    flipped = 1.0 - want_light
    assert _wait(lambda: centre.devices.priority_array("f2.p1.light") == {12: flipped}, 30)
    # expired: the strategy's value is back
    assert _wait(lambda: centre.devices.priority_array("f2.p1.light") == {12: want_light}, 90)
    page.reload()
    assert page.locator("text=browser test").count() == 0  # expired: no longer in force

    # Vietnamese
    page.click("#lang-vi")
    page.wait_for_selector("h1:has-text('Ghi đè')")
    page.goto(base + "/")
    page.wait_for_selector("h1:has-text('Tổng quan')")
    _shot(page, "overview-vi")
    page.goto(base + "/zones/")
    _shot(page, "zones-vi")
    page.goto(base + "/schedules/office")
    _shot(page, "schedule-editor-vi")

    # a trend as CSV, a report as PDF
    # a zone's temperature, setpoint, AC and occupancy on one chart, with the week before
    page.goto(base + "/trends/?days=2&compare=1")
    page.wait_for_selector("#trend-chart[data-ready]", timeout=15000)
    assert int(page.get_attribute("#trend-chart", "data-ready")) >= 4
    canvas = page.locator("#trend-chart canvas").first
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2)
    values = page.locator(".u-legend .u-value").all_inner_texts()
    assert any(any(c.isdigit() for c in v) for v in values[1:]), values  # values on hover
    page.click("#pan-left")  # pan: the window moves back in time
    assert page.get_attribute("#trend-chart", "data-window")
    _shot(page, "trends-4-series-vi")
    page.goto(base + "/trends/?point=f2.p1.temp&days=2")
    with page.expect_download() as dl:
        page.click("#csv")
    csv_path = tmp_path / "trend.csv"
    dl.value.save_as(csv_path)
    assert csv_path.read_text().startswith("time_local,time_utc,point,value")
    page.goto(base + "/reports/")
    month = centre.sim_now.strftime("%Y-%m")
    page.fill("input[name=month]", month)
    page.click("#make-report")
    page.wait_for_selector(f"a[href$='report-{month}-vi.pdf']")
    _shot(page, "reports-vi")
    with page.expect_download() as dl:
        page.click(f"a[href$='report-{month}-vi.pdf']")
    pdf = tmp_path / "r.pdf"
    dl.value.save_as(pdf)
    assert pdf.read_bytes()[:4] == b"%PDF"
    page.click("#lang-en")
    page.goto(base + "/reports/")
    _shot(page, "reports-en")
    page.set_viewport_size({"width": 768, "height": 1024})  # a tablet
    page.goto(base + "/")
    # still live long after the first page (it once went "No data from"
    # every device 15 simulated minutes in: BEMS polled once a wall minute at 60x)
    assert centre.sim_now - local > dt.timedelta(minutes=20), centre.sim_now
    assert any(c.isdigit() for c in page.inner_text("#kw-now")), page.inner_text("#kw-now")
    assert "No data from" not in page.inner_text("body")
    _shot(page, "overview-tablet-en")
    page.close()


SIZES = {"desktop": {"width": 1280, "height": 900}, "tablet": {"width": 768, "height": 1024}}
SCREENS = ("/", "/zones/", "/zones/f2.p1", "/schedules/", "/overrides/", "/strategies/",
           "/trends/", "/forecasts/", "/alarms/", "/faults/", "/reports/", "/audit/", "/users/")


WORDS = {  # what each language's screens say when a task is done
    "vi": {"overview": "Tổng quan", "days_added": "Đã thêm 7 ngày.", "day_added": "Đã thêm ngày.",
           "kept": "được giữ mát đến"},
    "en": {"overview": "Overview", "days_added": "7 days added.", "day_added": "Day added.",
           "kept": "stays cooled until"},
}
RUNS = [("desktop", "vi"), ("desktop", "en"), ("tablet", "vi"), ("tablet", "en")]


@pytest.mark.parametrize("size,lang", RUNS, ids=[f"{s}-{lang}" for s, lang in RUNS])
def test_tasks_in_few_clicks(demo, browser, size, lang, tmp_path):
    """A facility manager's tasks, from the overview, in each language and at each size, each
    in a counted number of clicks (typing into a field is not a click; choosing from a list is
    one); then the same kind of task by keyboard alone."""
    run = RUNS.index((size, lang))
    words = WORDS[lang]
    centre = demo["centre"]
    page, base = _admin_page(demo, browser, "vi-VN" if lang == "vi" else "en-GB", SIZES[size])
    page.wait_for_selector("h1")
    if page.locator(f"#lang-{lang}").count():  # an earlier test left the admin in the other
        page.click(f"#lang-{lang}")
    page.wait_for_selector(f"h1:has-text('{words['overview']}')")
    counts: dict[str, int] = {}
    clicks = [0]

    def click(selector: str) -> None:
        clicks[0] += 1
        page.click(selector)

    def task(name: str) -> None:
        page.goto(base + "/")  # every task starts at the overview
        clicks[0] = 0
        counts[name] = -1
        counts["_current"] = name

    def done() -> None:
        counts[counts.pop("_current")] = clicks[0]

    year = 2028 + run  # each run its own Tết and its own Saturday
    tet = {2028: ("01-24", "01-30"), 2029: ("02-11", "02-17"), 2030: ("02-01", "02-07"),
           2031: ("01-21", "01-27")}[year]
    # 1. a Tết closure: a week of days in one go
    task("tet_closure")
    click("nav a[href='/schedules/']")
    page.fill("#exc-day", f"{year}-{tet[0]}")
    page.fill("#exc-until", f"{year}-{tet[1]}")
    page.fill("#exc-name", "Nghỉ Tết" if lang == "vi" else "Tết holiday")
    click("#exc-add")
    page.wait_for_selector(f"text={words['days_added']}")
    done()
    # 2. next Saturday a make-up working day
    task("saturday_workday")
    local = centre.sim_now
    sat = local.date() + dt.timedelta(days=(5 - local.weekday()) % 7 or 7)
    sat += dt.timedelta(days=7 * run)
    click("nav a[href='/schedules/']")
    page.fill("#exc-day", sat.isoformat())
    clicks[0] += 1  # choosing from the list
    page.select_option("#exc-kind", "workday")
    click("#exc-add")
    page.wait_for_selector(f"text={words['day_added']}")
    done()
    # 3. keep the third floor's meeting hall cooled until 19:00 today
    task("keep_cooled")
    click("nav a[href='/zones/']")
    click("#plan-f3\\.core")
    click("#keep-cool button")
    page.wait_for_selector(f"text={words['kept']}")
    done()
    assert _wait(lambda: centre.devices.priority_array("f3.core.ac") == {12: 1.0}, 30)
    # 4. why is a room hot: its page says who commands it and why, with its trend
    task("why_hot")
    click("nav a[href='/zones/']")
    click("#plan-f2\\.p4")
    page.wait_for_selector("#who")
    assert page.locator("svg.chart, .chart").count() >= 1
    done()
    # 5. last month's report in Vietnamese
    task("report_last_month")
    click("nav a[href='/reports/']")
    click("#make-report")
    month = page.input_value("input[name=month]")
    with page.expect_download() as dl:
        click(f"a[href$='report-{month}-vi.pdf']")
    assert dl.value.suggested_filename == f"report-{month}-vi.pdf"
    done()
    assert counts == {"tet_closure": 2, "saturday_workday": 3, "keep_cooled": 3, "why_hot": 2,
                      "report_last_month": 3}, counts
    # keyboard alone: keep the second floor's south office cooled, from the overview
    page.goto(base + "/")
    keys = [0]

    def tab_to(selector: str, limit: int = 150) -> None:
        for _ in range(limit):
            keys[0] += 1
            page.keyboard.press("Tab")
            if page.evaluate("s => document.activeElement && document.activeElement.matches(s)",
                             selector):
                shown = page.evaluate(
                    "() => { const s = getComputedStyle(document.activeElement); "
                    "return s.outlineStyle !== 'none' || s.boxShadow !== 'none'; }")
                assert shown, f"no visible focus on {selector}"
                return
        raise AssertionError(f"Tab never reached {selector}")

    def enter() -> None:
        keys[0] += 1
        page.keyboard.press("Enter")

    tab_to("nav a[href='/zones/']")
    enter()
    page.wait_for_selector("#plan-f2\\.p1")
    tab_to("a.skip")  # past the navigation
    enter()
    tab_to("#plan-f2\\.p1")
    enter()
    page.wait_for_selector("#keep-cool")
    tab_to("a.skip")
    enter()
    tab_to("#keep-cool button")
    enter()
    page.wait_for_selector(f"text={words['kept']}")
    assert _wait(lambda: centre.devices.priority_array("f2.p1.ac") == {12: 1.0}, 30)
    counts["keep_cooled_keyboard_keys"] = keys[0]
    (ARTIFACTS / f"clicks-{size}-{lang}.txt").write_text(
        "\n".join(f"{k}: {v}" for k, v in counts.items()) + "\n")
    if lang != "vi":
        page.close()
        return
    contrast = (Path(__file__).parent / "contrast.js").read_text()
    low: dict[str, list[str]] = {}
    for lang in ("vi", "en"):  # every screen at this size, in both languages
        if lang == "en":
            page.click("#lang-en")
        for path in SCREENS:
            page.goto(base + path)
            _shot(page, f"{size}-{lang}-" + (path.strip("/").replace("/", "-") or "overview"))
            bad = page.evaluate(contrast)  # WCAG AA: 4.5:1, 3:1 for large text
            if bad:
                low[f"{lang}{path}"] = bad[:5]
    assert low == {}, low
    # a fault's own page: the demo's history carries injected faults, found before the UI
    # opened (the faults screen is not empty in the first minute)
    page.goto(base + "/faults/")
    assert page.locator("#fault-list a").count() >= 3, page.inner_text("main")[:2000]
    # the most costly kind first, a link to its own list
    page.click("#fault-kinds a >> nth=0")
    page.wait_for_selector("#fault-list")
    assert page.locator("#fault-list a").count() >= 1
    page.click("#fault-list a >> nth=0")
    page.wait_for_selector("#cause")
    _shot(page, f"{size}-en-fault")
    assert page.evaluate(contrast) == []
    page.close()


def test_an_admin_opens_the_alarm_log_and_previews_a_setting(demo, browser, site_file):
    """In Chromium: the alarm log from the alarms screen, its CSV; Settings shows the lines of
    the site file a change would make and writes nothing until Save."""
    before = site_file.read_bytes()
    page, base = _admin_page(demo, browser, "vi-VN", {"width": 1280, "height": 900})
    page.wait_for_selector("h1")
    if page.locator("#lang-vi").count():  # an earlier test left the admin in English
        page.click("#lang-vi")
    page.wait_for_selector("h1:has-text('Tổng quan')")
    page.goto(base + "/alarms/")
    page.click("a:has-text('Nhật ký cảnh báo')")
    page.wait_for_selector("h1:has-text('Nhật ký cảnh báo')")
    with page.expect_download() as dl:
        page.click("a:has-text('Xuất CSV')")
    assert Path(dl.value.path()).read_text(encoding="utf-8").startswith("raised_local,")
    _shot(page, "alarm-log-vi")
    page.click("nav a:has-text('Cài đặt')")
    page.wait_for_selector("h1:has-text('Cài đặt')")
    page.fill("input[name='name:f2.p1']", "Phòng Tài vụ")
    page.click("form:has(input[name='name:f2.p1']) button:has-text('Xem trước')")
    page.wait_for_selector("pre.diff")
    diff = page.inner_text("pre.diff")
    assert '+name = "Phòng Tài vụ"' in diff and diff.count("\n+") <= 2
    _shot(page, "settings-preview-vi")
    page.click("a:has-text('Hủy')")
    assert site_file.read_bytes() == before  # a preview writes nothing
    r = page.request.get(base + "/api/v1/points")  # the session is not an API token
    assert r.status == 401
    # the energy ↔ comfort slider shows its value, and the value follows it as it moves
    page.goto(base + "/strategies/")
    shown = page.inner_text("#o-comfort_weight")
    assert shown == page.input_value("#f-comfort_weight")
    page.fill("#f-comfort_weight", "70")
    page.wait_for_function("document.getElementById('o-comfort_weight').textContent === '70'")
    assert page.get_attribute("#f-comfort_weight", "aria-valuetext") == "70 / 100"
    page.close()
