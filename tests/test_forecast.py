"""Forecasting: metrics, calendars, repairs of bad input, save/load, backtests, the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bems.cli import main
from models.backtest import cv_rmse, nmbe, run_backtest
from models.data import DataError, DayTypes, clean_hourly, infer_closures, load_csv
from models.forecasters import (GBM, TOWT, Ensemble, HourlyRidge, ProphetModel, SameHourLastWeek,
                                from_json)

LOADS = Path(__file__).resolve().parents[2] / "shared" / "data" / "loads"


def office_series(days: int = 120, start: str = "2026-03-02", closed=(), seed: int = 1
                  ) -> pd.DataFrame:
    """An office-like hourly load: busy 8-18 on working days, cooling with temperature."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(start, periods=days * 24, freq="h")
    temp = 24 + 6 * np.sin((ds.hour - 9) / 24 * 2 * np.pi) + rng.normal(0, 1, len(ds))
    cal = DayTypes("VN", frozenset(closed))
    off = cal.off_series(pd.Series(ds)).to_numpy()
    busy = (~off) & (ds.hour >= 8) & (ds.hour < 18)
    y = 20 + 60 * busy + 2.0 * np.maximum(temp - 22, 0) * busy + rng.normal(0, 2, len(ds))
    return pd.DataFrame({"ds": ds, "y": y, "temp_c": temp})


def test_metrics_match_hand_computed_values():
    y, yhat = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 2.0, 6.0])
    # errors 0, 0, 1, -2: RMSE sqrt(5/4), mean 2.5
    assert cv_rmse(y, yhat) == pytest.approx(100 * np.sqrt(1.25) / 2.5)
    assert nmbe(y, yhat) == pytest.approx(100 * (1 - 2) / (4 * 2.5))
    assert cv_rmse(y, y) == 0.0


def test_holidays_closures_and_makeup_days(site):
    cal = DayTypes.for_site(site)
    assert cal.is_off(dt.date(2026, 9, 2))  # National Day
    assert cal.is_off(dt.date(2026, 2, 17))  # Tết
    assert cal.is_off(dt.date(2027, 2, 11))  # the site's own closure
    assert not cal.is_off(dt.date(2026, 8, 22))  # a make-up Saturday is a workday
    assert cal.is_off(dt.date(2026, 8, 29))  # an ordinary Saturday
    assert not cal.is_off(dt.date(2026, 8, 27))


def test_closures_in_history_are_learned_as_off_days():
    closed = {dt.date(2026, 4, 8), dt.date(2026, 4, 9)}  # not public holidays
    df = office_series(days=60, closed=closed)
    found = infer_closures(df, DayTypes("VN"))
    assert closed <= found
    assert len(found - closed - {dt.date(2026, 4, 27), dt.date(2026, 4, 30),
                                 dt.date(2026, 5, 1)}) == 0


def test_bad_input_is_repaired_or_refused_with_a_message(tmp_path):
    df = office_series(days=40)
    df.loc[10:11, "y"] = np.nan  # a 2-hour gap: interpolated
    df.loc[100:109, "y"] = np.nan  # a 10-hour gap: left missing
    df.loc[200, "y"] = -5.0  # negative
    df.loc[300, "y"] = 1e6  # absurd
    dup = df.iloc[[500]].copy()
    dup["y"] = df.loc[500, "y"] + 10  # the same hour twice (DST fall-back)
    df = pd.concat([df, dup]).sort_values("ds")
    clean, rep = clean_hourly(df, name="test")
    assert rep.duplicates == 1 and rep.negative == 1 and rep.spikes == 1
    assert rep.interpolated >= 2
    assert rep.left_missing == 10
    assert len(clean) == 40 * 24 and clean["ds"].is_unique
    assert clean.loc[500, "y"] == pytest.approx(df.loc[500, "y"].mean())
    assert "duplicate" in rep.summary()

    with pytest.raises(DataError, match="at least 28"):
        clean_hourly(office_series(days=40).head(24 * 10), name="short")
    bad = tmp_path / "bad.csv"
    bad.write_text("time,value\n2026-01-01 00:00,1\n")
    with pytest.raises(DataError, match="missing column"):
        load_csv(bad)
    bad.write_text("ds,y\nyesterday,1\n")
    with pytest.raises(DataError, match="not a date-time"):
        load_csv(bad)


def test_fifteen_minute_power_is_resampled_to_hourly(tmp_path):
    ds = pd.date_range("2026-01-01", periods=24 * 4 * 30, freq="15min")
    f = tmp_path / "x-15min.csv"
    pd.DataFrame({"ds": ds, "y": 8.0, "temp_c": 20.0}).to_csv(f, index=False)
    df, rep = load_csv(f)  # mean kW over 15 min -> hourly mean kW = kWh in the hour
    assert rep.resampled_from_minutes == 15
    assert len(df) == 24 * 30 and (df["y"] == 8.0).all()


@pytest.mark.parametrize("model", [SameHourLastWeek(), TOWT(), GBM(daytype=False),
                                   GBM(daytype=True), HourlyRidge()], ids=lambda m: m.name)
def test_forecast_survives_save_and_load(model):
    df = office_series(days=58)  # the last day, 28 April, is an ordinary Tuesday
    df["off"] = DayTypes("VN").off_series(df["ds"]).to_numpy()
    history, future = df.iloc[:-24], df.iloc[-24:]
    model.fit(history)
    before = model.predict(history, future)
    again = from_json(model.to_json())
    np.testing.assert_allclose(again.predict(history, future), before, rtol=1e-6)
    assert cv_rmse(future["y"], before) < 40


def test_the_hourly_ridge_learns_the_hours_and_the_heat_and_survives_gaps():
    """Its own model per hour: an office's working hours, and the cooling that grows with the
    heat, within the noise; a history with a missing week and NaN temperatures still fits; too
    little history is refused, not a forecast of nothing."""
    df = office_series(days=88, seed=3)  # the last day, 28 May, an ordinary Thursday
    df["off"] = DayTypes("VN").off_series(df["ds"]).to_numpy()
    history, future = df.iloc[:-24].copy(), df.iloc[-24:]
    history.loc[24 * 30:24 * 37, "y"] = np.nan
    history.loc[24 * 40:24 * 45, "temp_c"] = np.nan
    m = HourlyRidge()
    m.fit(history)
    p = m.predict(history, future)
    assert np.isfinite(p).all()
    assert np.sqrt(np.mean((p - future["y"].to_numpy()) ** 2)) < 5  # noise 2, shape 60
    busy = future["ds"].dt.hour.between(8, 17).to_numpy()
    assert p[busy].mean() - p[~busy].mean() > 50
    with pytest.raises(ValueError):
        HourlyRidge().fit(history.iloc[:24])


def test_one_real_prophet_fit_survives_save_and_load():
    df = office_series(days=70)
    df["off"] = DayTypes("VN").off_series(df["ds"]).to_numpy()
    history, future = df.iloc[:-48], df.iloc[-48:]
    m = ProphetModel()
    m.fit(history)
    before = m.predict(history, future)
    again = from_json(m.to_json())
    np.testing.assert_allclose(again.predict(history, future), before, rtol=1e-6)
    assert cv_rmse(future["y"], before) < 30
    ens = Ensemble([m, TOWT()])
    ens.members[1].fit(history)
    np.testing.assert_allclose(from_json(ens.to_json()).predict(history, future),
                               ens.predict(history, future), rtol=1e-6)


def test_backtest_is_day_ahead_and_selects_the_best():
    df = office_series(days=100, seed=3)
    models = {"last_week": SameHourLastWeek(), "towt": TOWT(), "gbm_lags": GBM(daytype=False),
              "gbm_daytype": GBM()}
    r = run_backtest(df, DayTypes("VN"), 10, dt.date(2026, 6, 10), refit_every=5,
                     models=models, meter="synthetic")
    assert r.first_day == dt.date(2026, 5, 31) and r.last_day == dt.date(2026, 6, 9)
    assert len(r.forecasts) == 240
    assert r.selected == min(r.scores, key=lambda k: r.scores[k].cv_rmse)
    assert "ensemble" in r.scores  # gbm_lags + gbm_daytype averaged
    # the holiday-aware models beat last week's values across Hùng Kings / 30-4 / 1-5 ...
    assert r.scores["gbm_daytype"].cv_rmse < 25


def test_backtest_refuses_too_little_history():
    df = office_series(days=40)
    with pytest.raises(DataError, match="not enough history"):
        run_backtest(df, DayTypes("VN"), 30, dt.date(2026, 4, 11),
                     models={"last_week": SameHourLastWeek()})


def test_cli_backtest_json(runner, tmp_path):
    f = tmp_path / "office.csv"
    office_series(days=80).to_csv(f, index=False)
    res = runner.invoke(main, ["forecast", "backtest", "--csv", str(f), "--country", "VN",
                               "--days", "5", "--json", "--no-prophet"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["meter"] == "office" and out["days"] == 5
    assert out["selected"] in out["models"]
    assert set(out["models"]["towt"]) == {"cv_rmse", "nmbe", "daily_cv_rmse", "fit_seconds"}
    table = runner.invoke(main, ["forecast", "backtest", "--csv", str(f), "--days", "5",
                                 "--no-prophet"])
    assert table.exit_code == 0 and "CV(RMSE)" in table.output


def test_cli_backtest_bad_file_is_one_clear_line(runner, tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n")
    res = runner.invoke(main, ["forecast", "backtest", "--csv", str(f)])
    assert res.exit_code == 1
    assert "missing column" in res.output and "Traceback" not in res.output


@pytest.mark.skipif(not LOADS.exists(), reason="shared meter data not present")
def test_real_meter_backtest_meets_guideline_14():
    df, rep = load_csv(LOADS / "cambridge-b0.csv")
    models = {"last_week": SameHourLastWeek(), "gbm_daytype": GBM()}
    r = run_backtest(df, DayTypes("GB"), 7, dt.date(2019, 11, 30), refit_every=7,
                     models=models, meter="cambridge-b0")
    best = r.scores[r.selected]
    assert best.meets_g14_hourly, best


@pytest.mark.slow
@pytest.mark.skipif(not LOADS.exists(), reason="shared meter data not present")
def test_real_meter_full_backtest_with_prophet():
    df, _ = load_csv(LOADS / "sacramento-office-201.csv")
    r = run_backtest(df, DayTypes("US"), 42, dt.date(2013, 11, 30), refit_every=7,
                     meter="sacramento")
    assert r.scores[r.selected].cv_rmse < r.scores["last_week"].cv_rmse


@pytest.mark.energyplus
def test_nightly_refit_writes_today_and_48_hours_from_the_sites_own_store(site, tmp_path, runner):
    from connectors.simulator.centre import VirtualCentre
    from models.service import refit_meter
    from bems.storage import Store

    db = tmp_path / "site.sqlite"
    now_local = dt.datetime(2026, 7, 20, 9, 0)
    with Store(db) as store:
        VirtualCentre(site).history(now_local, 35, store.insert_readings)
    now = now_local.replace(tzinfo=site.tz)
    r = refit_meter(site, db, "main", now, select_days=7,
                    candidates=("last_week", "towt", "gbm_daytype", "ensemble"))
    # today from midnight (as forecast from the days before: the overview's chart on a site's
    # first day), then 48 hours from now
    assert r["forecast_hours"] == 9 + 48
    assert r["selected"] in r["scores"]
    with Store(db) as store:
        fc = store.latest_forecasts("main")["main"]
        assert len(fc) == 9 + 48
        midnight = now.replace(hour=0).astimezone(dt.timezone.utc)
        assert fc[0]["ts"] == midnight and fc[9]["ts"] == now.astimezone(dt.timezone.utc)
        model = store.selected_model("main")
        assert model["name"] == r["selected"] and model["scores"]["select_days"] >= 3
        # the simulated building's own load: day-ahead error well inside Guideline 14
        assert r["scores"][r["selected"]]["cv_rmse"] < 30
        # Monday 10:00 (working) well above Monday 23:00
        by_hour = {f["ts"].astimezone(site.tz).hour: f["yhat"] for f in fc[:24]}
        assert by_hour[10] > by_hour[23]
    out = runner.invoke(main, ["forecast", "--meter", "main", "--db", str(db)])
    assert out.exit_code == 0 and "kWh" in out.output
