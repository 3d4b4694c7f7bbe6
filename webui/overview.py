"""Overview: power now, energy today and this month, cost, peak, forecast against actual."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import gettext as _

from webui import charts, ctx, now, state, store

bp = Blueprint("overview", __name__)


@bp.route("/")
def index():
    site = ctx()["site"]
    t = now()
    e = state.energy(site, store(), t)
    chart = None
    if e:
        day0 = e["day0"]
        hours = lambda rows: [((ts - day0).total_seconds() / 3600, v) for ts, v in rows]  # noqa: E731
        chart = charts.lines([(_("Actual"), hours(e["today_actual"])),
                              (_("Forecast"), hours(e["today_forecast"]))], unit="kW",
                             x_labels=[(h, f"{h:02d}:00") for h in range(0, 25, 6)],
                             x_range=(0, 24), from_zero=True)
    zones = state.zone_rows(site, store(), t)
    alarms = [a for a in state.alarms(site, store(), t) if not a["ack"]]
    from webui.faults import active_count, open_by_kind

    return render_template("overview.html", e=e, chart=chart, faults=active_count(),
                           fault_kinds=open_by_kind()[:4],
                           out_of_band=[z for z in zones if z["out_of_band"]],
                           overrides=store().overrides(active_at=t), alarms=alarms)
