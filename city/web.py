"""The city's web program (`bems-city web`): the ranking of centres, a centre's page with its
load and forecast, the city's month, and the consolidated yearly report (XLSX), on the shell
the site's UI uses too (`webui.shell`: login, roles, audit, languages, security headers)."""

from __future__ import annotations

import datetime as dt
import re

from pathlib import Path
from typing import Any, Callable

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import lazy_gettext as _l

from city.queries import SORTS
from city.report import consolidated_xlsx
from webui import ctx, now, store

bp = Blueprint("portfolio", __name__, url_prefix="/", template_folder="templates")
NAV = [("portfolio.ranking", _l("Centres")), ("portfolio.month", _l("City month"))]
STALE_H = 2.0  # a centre silent for longer is shown as not reporting

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_SITE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def city():
    return ctx()["portfolio"]


def _as_of() -> dt.date:
    today = now().astimezone(ctx()["site"].tz).date()
    latest = city().latest_day()
    return min(today, latest) if latest else today


@bp.route("/")
def ranking():
    sort = request.args.get("sort", "eui")
    if sort not in SORTS:
        sort = "eui"
    end = _as_of()
    centres = city().ranking(end, sort)
    t = now()
    total = sum(c.annual_kwh or 0 for c in centres)
    area = sum(c.floor_area_m2 for c in centres if c.annual_kwh)
    return render_template("portfolio_ranking.html", centres=centres, sort=sort, end=end,
                           now=t, stale_h=STALE_H, total_kwh=total,
                           city_eui=total / area if area else None,
                           health=city().ingest_health())


def _chart(measured: list, forecast: list, start: dt.datetime, end: dt.datetime) -> dict:
    """Polylines of kW over [start, end) for an inline SVG (no script needed)."""
    w, h = 900.0, 220.0
    values = [v for _, v in measured if v is not None] + [v for _, v, _ in forecast
                                                         if v is not None]
    top = max(values) * 1.1 if values else 1.0
    span = (end - start).total_seconds()

    def pts(series):
        return " ".join(f"{(t - start).total_seconds() / span * w:.1f},"
                        f"{h - (v / top) * h:.1f}" for t, v, *_ in series if v is not None)

    return {"w": w, "h": h, "top": top, "measured": pts(measured), "forecast": pts(forecast),
            "has_forecast": bool(forecast), "model": forecast[0][2] if forecast else None}


@bp.route("/centre/<site_id>")
def centre(site_id: str):
    if not _SITE.fullmatch(site_id):
        abort(404)
    c = city().centre(site_id)
    if c is None:
        abort(404)
    main = c["main_meter"]
    end_day = _as_of()
    tz = ctx()["site"].tz
    end = dt.datetime.combine(end_day + dt.timedelta(days=2), dt.time(), tz)
    start = end - dt.timedelta(days=8)
    measured, forecast = city().load(site_id, main, start, end) if main else ([], [])
    return render_template("portfolio_centre.html", c=c, chart=_chart(measured, forecast,
                                                                      start, end),
                           start=start, end=end, stale_h=STALE_H, now=now())


@bp.route("/month")
def month():
    months = city().month_list()
    m = request.args.get("month") or (months[0] if months else None)
    if m is not None and not _MONTH.fullmatch(m):
        abort(400)
    rows = city().months(m) if m else []
    total = sum(r[4] or 0 for r in rows)
    before = sum(r[9] or 0 for r in rows if r[4] is not None and r[9] is not None)
    now_same = sum(r[4] or 0 for r in rows if r[4] is not None and r[9] is not None)
    return render_template("portfolio_month.html", months=months, month=m, rows=rows,
                           total=total, vnd=sum(r[5] or 0 for r in rows),
                           reporting=sum(r[4] is not None for r in rows),
                           change=(now_same / before - 1) if before else None)


@bp.route("/year.xlsx")
def year_xlsx():
    try:
        year = int(request.args.get("year", ""))
    except ValueError:
        abort(400)
    if not 2000 <= year <= 2100:
        abort(400)
    data = consolidated_xlsx(city().year(year), year, ctx()["site"].name)
    u = g_user()
    store().audit(u, "report.city_year", {"year": year}, now())
    return Response(data, mimetype="application/vnd.openxmlformats-officedocument."
                                    "spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=tt25-{year}.xlsx"})


def g_user() -> str | None:
    from flask import g

    return g.user["name"] if g.get("user") else None


def city_site(name: str, timezone: str = "Asia/Ho_Chi_Minh", web: Any = None):
    """What the shell needs of a 'site' for the city's program: its name, time zone and web
    settings."""
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from bems.site import Web

    return SimpleNamespace(name=name, timezone=timezone, tz=ZoneInfo(timezone),
                           web=web or Web(), points=(), zones=())


def create_city_app(name: str, db_path: Path, queries, web: Any = None,
                    test_config: dict | None = None,
                    clock: Callable[[], dt.datetime] | None = None):
    """The city's UI over the portfolio store (`queries`: a `city.queries.CityQueries`);
    `db_path` keeps its own users, sessions and audit."""
    from webui.shell import create_shell

    return create_shell(city_site(name, web=web), db_path, screens=(bp,), nav=NAV,
                        home_endpoint="portfolio.ranking", clock=clock,
                        test_config=test_config, extensions={"portfolio": queries})
