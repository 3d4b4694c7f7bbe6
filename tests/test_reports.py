"""Reports on a store filled by the virtual centre: totals, cost, peak, formats, bad input."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from bems.reports.monthly import ReportError, build_monthly
from models.savings import option_c
from bems.reports.render import render
from bems.reports.yearly import build_yearly
from bems.reports import yearly
from bems.site import Tariff, TouPeriod
from bems.storage import Store
from tests.conftest import simulated_db

pytestmark = pytest.mark.energyplus  # the virtual centre's EnergyPlus physics

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def filled(tmp_path_factory, site):
    """Two months of the centre under its time clock: June is the baseline, July the report."""
    return simulated_db(tmp_path_factory.mktemp("reports") / "centre.sqlite", site,
                        dt.datetime(2026, 8, 1, 0, 0), 61)


@pytest.fixture
def rstore(filled):
    with Store(filled) as s:
        yield s


def _main_kw(site, store, month_start, month_end):
    return [(t, v) for t, v, q in store.readings("meter.main.kw", month_start, month_end)
            if q == "good" and v is not None]


def test_end_uses_add_up_to_the_main_meter(site, rstore):
    r = build_monthly(site, rstore, "2026-07")
    assert r.main.kwh > 10_000 and r.main.coverage > 0.99
    metered = sum(v for k, v in r.end_uses.items() if k != "unmetered")
    assert metered + r.end_uses["unmetered"] == pytest.approx(r.main.kwh, rel=0.005)
    assert 0 <= r.end_uses["unmetered"] < 0.1 * r.main.kwh  # exterior lights, elevators...
    subs = [m for m in r.meters if m.measures in ("ac", "lighting", "plugs")]
    assert sum(m.kwh for m in subs) == pytest.approx(metered, rel=0.005)
    assert len(r.daily) == 31
    assert sum(v for _, v in r.daily) == pytest.approx(r.main.kwh, rel=0.005)
    assert r.max_day[1] == max(v for _, v in r.daily)


def test_peak_is_the_largest_15_minute_mean(site, rstore):
    r = build_monthly(site, rstore, "2026-07")
    readings = _main_kw(site, rstore, r.start, r.end)
    top = max(readings, key=lambda x: x[1])  # the history holds one reading per 15 minutes
    assert r.peak_kw == pytest.approx(top[1])
    assert r.peak_at == top[0].astimezone(site.tz).replace(minute=top[0].minute // 15 * 15)


def test_cost_equals_kwh_times_flat_and_time_of_use_tariffs(site, rstore):
    flat = Tariff("flat test", dt.date(2020, 1, 1), "flat", 0.10, price_vnd_per_kwh=2000.0)
    tou = Tariff("tou test", dt.date(2020, 1, 1), "tou", 0.08,
                 prices=(("peak", 5000.0), ("normal", 3000.0), ("offpeak", 1000.0)),
                 periods=(TouPeriod("peak", (0, 1, 2, 3, 4, 5), dt.time(9, 30), dt.time(11, 30)),
                          TouPeriod("peak", (0, 1, 2, 3, 4, 5), dt.time(17), dt.time(20)),
                          TouPeriod("offpeak", tuple(range(7)), dt.time(22), dt.time(0)),
                          TouPeriod("offpeak", tuple(range(7)), dt.time(0), dt.time(4))))
    for tariff in (flat, tou):
        s2 = dataclasses.replace(site, tariffs=(tariff,))
        r = build_monthly(s2, rstore, "2026-07")
        expected = 0.0
        for t, kw in _main_kw(site, rstore, r.start, r.end):
            # a reading counts in its 15-minute bucket, priced at the bucket's start
            local = t.astimezone(site.tz).replace(minute=t.minute // 15 * 15, second=0)
            if tariff.kind == "flat":
                price = 2000.0
            else:
                h = local.hour + local.minute / 60
                if local.weekday() <= 5 and (9.5 <= h < 11.5 or 17 <= h < 20):
                    price = 5000.0
                elif h >= 22 or h < 4:
                    price = 1000.0
                else:
                    price = 3000.0
            expected += kw * 0.25 * price
        assert r.cost.before_vat_vnd == pytest.approx(expected, rel=1e-6)
        assert r.cost.vat_vnd == pytest.approx(expected * tariff.vat, rel=1e-6)
        if tariff.kind == "tou":
            assert set(r.cost.by_band) == {"peak", "normal", "offpeak"}


def test_formats_hold_the_same_figures(site, rstore, tmp_path):
    from openpyxl import load_workbook

    r = build_monthly(site, rstore, "2026-07")
    csv_path = render(r, "csv", tmp_path, "en")
    with open(csv_path, encoding="utf-8") as f:
        rows = {(row["section"], row["item"]): row["value"] for row in csv.DictReader(f)}
    xlsx = load_workbook(render(r, "xlsx", tmp_path, "vi"))
    summary = {(row[0], row[1]): row[2] for row in xlsx["Summary"].iter_rows(min_row=3,
                                                                                values_only=True)}
    for key in (("summary", "total_kwh"), ("summary", "peak_kw"),
                ("summary", "cost_total_vnd"), ("end_use", "ac"), ("end_use", "unmetered")):
        assert float(rows[key]) == pytest.approx(float(summary[key]))
    daily = list(xlsx["Daily"].iter_rows(min_row=2, values_only=True))
    assert len(daily) == 31
    assert sum(v for _, v in daily) == pytest.approx(r.main.kwh, rel=0.001)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdf_opens_and_holds_the_figures_in_both_languages(site, rstore, tmp_path):
    from bems.reports.render import fmt

    r = build_monthly(site, rstore, "2026-07")
    ARTIFACTS.mkdir(exist_ok=True)
    for lang, title in (("en", "Monthly energy report"), ("vi", "Báo cáo năng lượng tháng")):
        pdf = render(r, "pdf", tmp_path, lang)
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                              text=True, check=True).stdout
        assert title in text
        assert fmt(r.main.kwh, lang) in text
        assert fmt(r.peak_kw, lang) in text
        assert fmt(r.cost.total_vnd, lang, 0) in text
        subprocess.run(["pdftoppm", "-r", "70", "-png", str(pdf),
                        str(ARTIFACTS / f"report-2026-07-{lang}")], check=True)
        # a heading is on the page of its chart (the daily chart is the second image)
        pages = text.split("\f")
        head = next(i for i, p in enumerate(pages) if ("Điện năng theo ngày" if lang == "vi"
                                                         else "Daily energy") in p)
        images = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True,
                                text=True, check=True).stdout.splitlines()[2:]
        assert int(images[1].split()[0]) == head + 1, (head, images)
        if lang == "vi":  # no English reason inside the Vietnamese report
            assert "not available" not in text and "no baseline" not in text
            assert "chưa ước tính tiết kiệm" in text  # (built without a savings model)
    assert fmt(1234.5, "vi") == "1.234,5" and fmt(1234.5, "en") == "1,234.5"


def test_savings_against_a_baseline_period(site, rstore):
    with_baseline = dataclasses.replace(site, reports=dataclasses.replace(
        site.reports, baseline_from=dt.date(2026, 6, 1), baseline_to=dt.date(2026, 6, 30)))
    s = build_monthly(with_baseline, rstore, "2026-07", option_c).savings
    assert s.available and s.model.startswith("TOWT")
    assert s.cv_rmse < 30  # the model is good enough to trust (Guideline 14 hourly)
    # the same time clock ran in June and July: no real savings, within the model's error
    assert abs(s.saved_pct) < 10
    none = build_monthly(site, rstore, "2026-07", option_c).savings
    assert not none.available and "baseline" in none.reason
    unasked = build_monthly(with_baseline, rstore, "2026-07").savings
    assert not unasked.available and "not_estimated" in unasked.reason


def test_no_data_and_missing_meters_are_clear(site, rstore, tmp_path):
    with pytest.raises(ReportError, match="no readings of the main meter"):
        build_monthly(site, rstore, "2025-03")
    with pytest.raises(ReportError, match="YYYY-MM"):
        build_monthly(site, rstore, "July")
    # a meter the store has never heard of: shown as no data, not as zero
    extra = dataclasses.replace(site, meters=site.meters + (dataclasses.replace(
        site.meter("plugs"), id="kitchen", name="Bếp", measures="other", power="kitchen.kw",
        energy=None),))
    r = build_monthly(extra, rstore, "2026-07")
    kitchen = next(m for m in r.meters if m.id == "kitchen")
    assert kitchen.kwh is None and kitchen.coverage == 0
    assert r.end_uses["other"] == 0.0


def test_yearly_report_for_the_ministry(site, rstore, tmp_path):
    from openpyxl import load_workbook

    y = build_yearly(site, rstore, 2026)
    assert [m for m, v in y.months if v is not None] == [6, 7, 8] or \
        [m for m, v in y.months if v is not None] == [6, 7]
    assert y.total_kwh > 0 and y.toe == pytest.approx(y.total_kwh / 1000 * 0.1543)
    wb = load_workbook(yearly.render(y, "xlsx", tmp_path))
    cells = [c for row in wb.active.iter_rows(values_only=True) for c in row if c is not None]
    assert "Mẫu 1.1" in cells[0] and y.staff in cells
    assert yearly.render(y, "pdf", tmp_path).exists()
    with pytest.raises(ReportError):
        build_yearly(site, rstore, 2020)


def test_report_command(runner, filled, tmp_path):
    from bems.cli import main

    res = runner.invoke(main, ["report", "--month", "2026-07", "--format", "xlsx", "--lang",
                               "en", "--out", str(tmp_path), "--db", str(filled)])
    assert res.exit_code == 0, res.output
    assert Path(res.output.strip()).exists()
    bad = runner.invoke(main, ["report", "--month", "2025-01", "--db", str(filled), "--out",
                               str(tmp_path)])
    assert bad.exit_code == 1 and "nothing to report" in bad.output


def test_the_month_counts_its_alarms_and_the_time_to_acknowledge(site, rstore, tmp_path):
    from bems.reports.render import rows, to_pdf

    utc = dt.timezone.utc
    t = dt.datetime(2026, 7, 8, 2, 0, tzinfo=utc)
    a = {"kind": "stale", "severity": "critical", "target": "FC1", "value": None}
    for i, ack_after in enumerate((10, 30, None)):
        key = f"stale:x{i}"
        rstore.sync_alarms([{**a, "key": key}], t + dt.timedelta(days=i))
        if ack_after is not None:
            rstore.ack_alarm_entry(key, "lan", t + dt.timedelta(days=i, minutes=ack_after))
        rstore.sync_alarms([], t + dt.timedelta(days=i, hours=1))
    rstore.sync_alarms([{**a, "key": "out", "severity": "info"}],
                       dt.datetime(2026, 8, 2, tzinfo=utc))  # next month: not counted
    r = build_monthly(site, rstore, "2026-07")
    assert r.alarms == {"raised": 3, "by_severity": {"critical": 3}, "acknowledged": 2,
                        "median_ack_min": 20.0}
    got = {(s, k): v for s, k, v, _u in rows(r) if s == "alarms"}
    assert got[("alarms", "raised_critical")] == 3
    assert got[("alarms", "median_minutes_to_acknowledge")] == 20.0
    pdf = to_pdf(r, tmp_path / "r.pdf", "vi")
    assert pdf.stat().st_size > 1000


def test_the_month_says_why_in_the_reports_language(site, rstore, tmp_path):
    """An override's reason is data (a code and its arguments): the report renders it from
    the one catalogue in its language (it was the ledger's English in both)."""
    from openpyxl import load_workbook

    from bems.reasons import reason
    from bems.reports.render import event_line

    why = reason("override_by_note", until="17:00", by="lan", note="họp tổ")
    rstore.record_write(point="f2.p1.sp", action="write", value=25.5, priority=8,
                        source="override", reason=why, outcome="done",
                        ts=dt.datetime(2026, 7, 15, 3, 0, tzinfo=dt.timezone.utc))
    r = build_monthly(site, rstore, "2026-07")
    e = next(e for e in r.events if e.get("point") == "f2.p1.sp")
    assert "ghi đè của lan đến 17:00: họp tổ" in event_line(e, "vi")
    assert "operator override until 17:00 by lan: họp tổ" in event_line(e, "en")
    for lang, text in (("vi", "ghi đè của lan đến 17:00: họp tổ"),
                       ("en", "operator override until 17:00 by lan: họp tổ")):
        sheet = load_workbook(render(r, "xlsx", tmp_path / lang, lang))["Events"]
        assert text in [row[3] for row in sheet.iter_rows(min_row=2, values_only=True)]
