"""Trends: any point over a chosen period, as a chart and as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import urllib.parse

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


MAX_SERIES = 4


def _points(site) -> list:
    """The points asked for (repeat ?point=), known ones only, at most four; by default a
    zone's temperature, setpoint, AC and occupancy — what answers "why is this room hot?"."""
    known = {p.id: p for p in site.points}
    asked = [known[p] for p in dict.fromkeys(request.args.getlist("point")) if p in known]
    if asked:
        return asked[:MAX_SERIES]
    z = site.zones[0] if site.zones else None
    return [known[p] for p in (z.temperature, z.cooling_setpoint, z.ac_status, z.occupancy)
            if z and p in known] if z else []


def _data(site) -> dict:
    start, end, days = _period(site)
    compare = request.args.get("compare") == "1"
    out = []
    for p in _points(site):
        name = p.name or p.id
        rows = _series(p.id, start, end, days)
        out.append({"id": p.id, "label": name, "unit": p.unit or "", "kind": p.kind,
                    "t": [int(t.timestamp()) for t, _v in rows], "v": [v for _t, v in rows]})
        meter = next((m for m in site.meters if m.power == p.id), None)
        if meter is not None:  # a meter's power: its latest forecast beside it, and ahead
            fc = store().latest_forecasts(meter.id).get(meter.id, [])
            ahead = end + dt.timedelta(hours=48)
            fc = [f for f in fc if start <= f["ts"] <= ahead]
            if fc:
                out.append({"id": p.id, "label": _("%(name)s, forecast", name=name),
                            "unit": p.unit or "", "kind": p.kind, "previous": True,
                            "forecast": True, "t": [int(f["ts"].timestamp()) for f in fc],
                            "v": [f["yhat"] for f in fc]})
        if compare:  # the same hours a week earlier, drawn on this period's time axis
            week = dt.timedelta(days=7)
            prev = _series(p.id, start - week, end - week, days)
            out.append({"id": p.id, "label": _("%(name)s, a week earlier", name=name),
                        "unit": p.unit or "", "kind": p.kind, "previous": True,
                        "t": [int((t + week).timestamp()) for t, _v in prev],
                        "v": [v for _t, v in prev]})
    return {"tz": site.timezone, "from": int(start.timestamp()), "to": int(end.timestamp()),
            "series": out}


@bp.route("/")
def index():
    site = ctx()["site"]
    start, end, days = _period(site)
    data = _data(site)
    # the server-drawn chart: what prints, and what shows without the script
    hours = [(s["label"], [((t - start.timestamp()) / 3600, v) for t, v in zip(s["t"], s["v"])])
             for s in data["series"] if s["kind"] not in ("status", "occupancy", "lighting")]
    chart = charts.lines(hours[:3], from_zero=all(s["kind"] in ("power", "energy")
                                                  for s in data["series"]))
    chosen = [s["id"] for s in data["series"] if not s.get("previous")]
    query = urllib.parse.urlencode([("point", p) for p in chosen] +
                                   [("days", days), ("compare", request.args.get("compare", ""))])
    return render_template("trends.html", points=site.points, chosen=chosen, days=days,
                           chart=chart, n=sum(len(s["t"]) for s in data["series"]),
                           query=query, compare=request.args.get("compare") == "1",
                           data=data,  # the chart's data in the page: no second request
                           max_series=MAX_SERIES)


@bp.route("/csv")
def export():
    site = ctx()["site"]
    known = {p.id for p in site.points}
    points = [p for p in dict.fromkeys(request.args.getlist("point")) if p in known]
    if not points or len(points) != len(set(request.args.getlist("point"))):
        return render_template("error.html", message=_("Unknown point.")), 404
    points = points[:MAX_SERIES]
    start, end, days = _period(site)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["time_local", "time_utc", "point", "value"])
    for point in points:
        w.writerows(safe_rows([t.astimezone(site.tz).strftime("%Y-%m-%d %H:%M:%S"),
                               t.strftime("%Y-%m-%dT%H:%M:%SZ"), point, v]
                              for t, v in _series(point, start, end, days)))
    # a file name made only of safe characters, quoted (no header injection whatever the id)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"trend-{'+'.join(points)}-{days}d")[:120] + ".csv"
    return Response(buf.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
