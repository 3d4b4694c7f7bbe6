"""Trends: any point over a chosen period, as a chart and as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

from flask import Blueprint, Response, render_template, request

from flask_babel import gettext as _

from bems.text import safe_rows
from webui import charts, ctx, now, store

bp = Blueprint("trends", __name__, url_prefix="/trends")


def _period(site):
    end = now()
    try:
        days = max(1, min(366, int(request.args.get("days", "1"))))
    except ValueError:
        days = 1
    return end - dt.timedelta(days=days), end, days


def _series(point: str, start, end, days):
    """Raw readings for short periods, 15-min / hourly means for longer ones."""
    if days <= 2:
        return [(t, v) for t, v, q in store().readings(point, start, end) if v is not None]
    level = "15min" if days <= 14 else "hour"
    return [(r["bucket"], r["mean"]) for r in store().rollups(level, [point], start, end)]


@bp.route("/")
def index():
    site = ctx()["site"]
    point = request.args.get("point") or (site.zones[0].temperature if site.zones else "")
    start, end, days = _period(site)
    rows = _series(point, start, end, days) if point else []
    pt = next((p for p in site.points if p.id == point), None)
    name = (pt.name or pt.id) if pt else point
    chart = charts.lines([(name, [((t - start).total_seconds() / 3600, v) for t, v in rows])],
                         from_zero=bool(pt and pt.kind in ("power", "energy")))
    return render_template("trends.html", points=site.points, point=point, days=days,
                           chart=chart, n=len(rows))


@bp.route("/csv")
def export():
    site = ctx()["site"]
    point = request.args.get("point", "")
    if point not in {p.id for p in site.points}:
        return render_template("error.html", message=_("Unknown point.")), 404
    start, end, days = _period(site)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["time_local", "time_utc", "point", "value"])
    w.writerows(safe_rows([t.astimezone(site.tz).strftime("%Y-%m-%d %H:%M:%S"),
                           t.strftime("%Y-%m-%dT%H:%M:%SZ"), point, v]
                          for t, v in _series(point, start, end, days)))
    # a file name made only of safe characters, quoted (no header injection whatever the id)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"trend-{point}-{days}d") + ".csv"
    return Response(buf.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
