"""Zones and floors: a plan of each floor coloured by temperature, the table of temperature,
setpoint, AC and lighting, who commands them; and a page per zone."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from bems.overrides import OverrideError, add_override
from bems.status import COMFORT
from webui import charts, ctx, floorplan, now, state, store
from webui.auth import requires
from webui.i18n import number

bp = Blueprint("zones", __name__, url_prefix="/zones")


def _labels() -> dict:
    return {"ac": _("AC on"), "light": _("lights on"), "none": _("no data"),
            "missing": _("Zones not on this plan")}


@bp.route("/")
def index():
    site, t = ctx()["site"], now()
    rows = state.zone_rows(site, store(), t)
    floors = sorted({r["zone"].floor for r in rows})
    by_id = {r["zone"].id: r for r in rows}
    drawn = {f: path for b in site.buildings for f, path in b.plans}
    plans = {}
    for f in floors:
        on_floor = [z for z in site.zones if z.floor == f]
        draw = floorplan.site_svg if f in drawn else floorplan.floor_svg
        args = (drawn[f],) if f in drawn else ()
        plans[f] = draw(*args, on_floor, by_id, *COMFORT,
                        lambda zid: url_for("zones.zone", zid=zid), _labels(),
                        fmt=lambda v: number(v, 1))
    return render_template("zones.html", rows=rows, floors=floors, plans=plans,
                           clock=t.astimezone(site.tz).strftime("%H:%M"), comfort=COMFORT)


@bp.route("/<zid>")
def zone(zid: str):
    site, t = ctx()["site"], now()
    z = next((z for z in site.zones if z.id == zid), None)
    if z is None:
        abort(404)
    row = next(r for r in state.zone_rows(site, store(), t) if r["zone"].id == zid)
    start = t - dt.timedelta(days=2)
    series = []
    for label, pid in ((_("Temperature"), z.temperature), (_("Setpoint"), z.cooling_setpoint)):
        if pid:
            pts = [((ts - start).total_seconds() / 3600, v)
                   for ts, v, _q in store().readings(pid, start, t) if v is not None]
            series.append((label, pts))
    x_labels = []
    local0 = start.astimezone(site.tz)
    for h in range(0, 49, 12):
        x_labels.append((h, (local0 + dt.timedelta(hours=h)).strftime("%d/%m %H:%M")))
    chart = charts.lines(series, unit="°C", x_labels=x_labels, x_range=(0, 48))
    points = {role: site.point(pid) for role, pid in z.points().items()}
    overrides = [o for o in store().overrides(active_at=t)
                 if o["point"] in {p.id for p in points.values()}]
    from webui.faults import for_target

    return render_template("zone.html", z=z, row=row, chart=chart, points=points,
                           overrides=overrides, faults=for_target(z.id),
                           plan=plan_view(site, z, t))


def plan_view(site, z, t: dt.datetime) -> dict | None:
    """Today's plan for the zone against what happened: the measured air temperature, the
    air temperature the day's first plan and the latest plan expected, and the latest plan's
    operative temperature."""
    from bems.predictive import store as pstore

    day = t.astimezone(site.tz).date()
    first, latest, _note = pstore.day_plans(store(), day)
    if (first is None or z.id not in first.zones) and (latest is None or
                                                        z.id not in latest.zones):
        return None
    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=site.tz)

    def hours(p, values):
        start = dt.datetime.fromisoformat(p.zones[z.id].start).replace(tzinfo=site.tz)
        h0 = (start - midnight).total_seconds() / 3600
        return [(h0 + k / 4, v) for k, v in enumerate(values)]

    series = []
    if z.temperature:
        series.append((_("Measured"), [((ts - midnight).total_seconds() / 3600, v)
                                       for ts, v, _q in store().readings(z.temperature,
                                                                         midnight, t)
                                       if v is not None]))
    for label, p in ((_("First plan of the day"), first), (_("Latest plan"), latest)):
        if p is not None and z.id in p.zones:
            series.append((label, hours(p, p.zones[z.id].air)))
    if latest is not None and z.id in latest.zones:
        series.append((_("Latest plan, operative"), hours(latest, latest.zones[z.id].operative)))
    x_labels = [(h, f"{h:02d}:00") for h in range(0, 25, 3)]
    model = pstore.load_model(store())
    m = model.zones.get(z.id) if model else None
    return {"chart": charts.lines(series, unit="°C", x_labels=x_labels, x_range=(0, 24)),
            "first": first, "latest": latest, "model": m,
            "made_at": dt.datetime.fromisoformat(latest.made_at) if latest else None}


@bp.route("/<zid>/keep-cool", methods=["POST"])
@requires("operator")
def keep_cool(zid: str):
    """Keep a zone cooled after hours until a time today (a late meeting): its AC held on and
    its setpoint at the occupied one, as two operator overrides that end by themselves."""
    site, t = ctx()["site"], now()
    z = next((z for z in site.zones if z.id == zid), None)
    if z is None or not z.ac_status or not z.cooling_setpoint:
        abort(404)
    try:
        hh, mm = (int(x) for x in request.form.get("until", "").split(":"))
        local = t.astimezone(site.tz)
        until = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
    except ValueError:
        flash(_("Enter a time of day, e.g. 19:00."), "error")
        return redirect(url_for("zones.zone", zid=zid))
    sp = max(z.occupied_setpoint or site.strategies.occupied_setpoint,
             site.control.policy_min_cooling_setpoint)
    why = _("kept cooled until %(t)s", t=until.strftime("%H:%M"))
    try:
        add_override(site, store(), z.ac_status, 1.0, until, g.user["name"], why, t)
        add_override(site, store(), z.cooling_setpoint, sp, until, g.user["name"], why, t)
    except OverrideError:
        flash(_("The time must be later today."), "error")
        return redirect(url_for("zones.zone", zid=zid))
    flash(_("%(zone)s stays cooled until %(t)s.", zone=z.name, t=until.strftime("%H:%M")))
    return redirect(url_for("zones.zone", zid=zid))

