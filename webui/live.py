"""Live values for the open screens: one small JSON document, polled by static/live.js, so the
overview's power and the zones' temperatures move without a reload."""

from __future__ import annotations

from flask import Blueprint, jsonify

from webui import ctx, now, state, store
from webui.i18n import number

bp = Blueprint("live", __name__, url_prefix="/live")


def _fmt(value, digits: int = 1) -> str:
    return number(value, digits) if value is not None else "–"


@bp.route("/now.json")
def now_json():
    site = ctx()["site"]
    t = now()
    e = state.energy(site, store(), t)
    zones = {}
    for r in state.zone_rows(site, store(), t):
        zones[r["zone"].id] = {"temp": _fmt(r["temp"]), "setpoint": _fmt(r["setpoint"]),
                               "ac": r["ac"], "light": r["light"],
                               "out_of_band": bool(r["out_of_band"]), "stale": r["stale"]}
    resp = jsonify({"time": t.isoformat(), "clock": t.astimezone(site.tz).strftime("%H:%M"),
                    "kw_now": _fmt(e.get("kw_now")) if e else "–",
                    "zones": zones})
    resp.headers["Cache-Control"] = "no-store"
    return resp
