"""Zones and floors: temperature, setpoint, AC and lighting, and who commands them."""

from __future__ import annotations

from flask import Blueprint, render_template

from webui import ctx, now, state, store

bp = Blueprint("zones", __name__, url_prefix="/zones")


@bp.route("/")
def index():
    site, t = ctx()["site"], now()
    rows = state.zone_rows(site, store(), t)
    floors = sorted({r["zone"].floor for r in rows})
    return render_template("zones.html", rows=rows, floors=floors,
                           clock=t.astimezone(site.tz).strftime("%H:%M"))
