"""Schedules: the weekly periods per season, and exception days (closures, make-up days)."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from bems.schedules import (
    ScheduleError, add_exceptions, delete_exception, effective_site, from_dict, save, to_dict,
)
from bems.site import WEEKDAYS
from webui import ctx, now, store
from webui.auth import requires

bp = Blueprint("schedules", __name__, url_prefix="/schedules")

MESSAGES = {
    "time_invalid": lambda: _("Times are HH:MM."),
    "end_before_start": lambda: _("A period must end after it starts."),
    "overlap": lambda: _("Two periods overlap on the same day."),
    "no_days": lambda: _("Choose at least one day."),
    "month_day_invalid": lambda: _("Season dates are MM-DD."),
    "unknown_schedule": lambda: _("Unknown schedule."),
    "kind_invalid": lambda: _("Unknown kind of day."),
    "no_seasons": lambda: _("A schedule needs at least one season."),
    "no_periods": lambda: _("A season needs at least one period."),
    "start_invalid": lambda: _("A period cannot start at 24:00."),
    "seasons_overlap": lambda: _("Two seasons overlap."),
    "seasons_gap": lambda: _("The seasons must cover every day of the year."),
    "day_taken": lambda: _("That date already is a closure or a make-up working day."),
    "day_invalid": lambda: _("Dates are YYYY-MM-DD."),
    "range_invalid": lambda: _("The last day must be on or after the first, at most 31 days."),
}


def _form_to_dict(form) -> dict:
    seasons = []
    si = 0
    while f"s{si}_name" in form:
        periods = []
        pi = 0
        while f"s{si}_p{pi}_start" in form:
            start, end = form[f"s{si}_p{pi}_start"].strip(), form[f"s{si}_p{pi}_end"].strip()
            days = [d for d in WEEKDAYS if form.get(f"s{si}_p{pi}_{d}")]
            if start or end:
                periods.append({"days": days, "start": start, "end": end})
            pi += 1
        seasons.append({"name": form[f"s{si}_name"], "from": form[f"s{si}_from"],
                        "to": form[f"s{si}_to"], "periods": periods})
        si += 1
    return {"name": form.get("name", ""), "seasons": seasons}


@bp.route("/")
def index():
    site = effective_site(ctx()["site"], store())
    return render_template("schedules.html", schedules=site.schedules,
                           exceptions=store().exceptions(), weekdays=WEEKDAYS, to_dict=to_dict)


@bp.route("/<sid>", methods=["GET", "POST"])
@requires("operator")
def edit(sid: str):
    site = effective_site(ctx()["site"], store())
    try:
        current = site.schedule(sid)
    except KeyError:
        return render_template("error.html", message=_("Unknown schedule.")), 404
    data, problems = to_dict(current), []
    if request.method == "POST":
        data = _form_to_dict(request.form)
        try:
            save(store(), ctx()["site"], from_dict(sid, data), g.user["name"], now())
            flash(_("Schedule saved; it takes effect at the next strategy run."))
            return redirect(url_for("schedules.index"))
        except ScheduleError as err:
            problems = [(f, MESSAGES.get(code, lambda: code)()) for f, code in err.problems]
    # two empty rows per season to add periods
    for s in data["seasons"]:
        s["periods"] = s["periods"] + [{"days": [], "start": "", "end": ""}] * 2
    return render_template("schedule_edit.html", sid=sid, data=data, problems=problems,
                           weekdays=WEEKDAYS), (400 if problems else 200)


@bp.route("/exceptions", methods=["POST"])
@requires("operator")
def add_day():
    try:
        day = dt.date.fromisoformat(request.form.get("day", ""))
        until = request.form.get("until", "").strip()
        last = dt.date.fromisoformat(until) if until else day
        added = add_exceptions(store(), day, last, request.form.get("kind", ""),
                               request.form.get("name", ""), g.user["name"], now(),
                               ctx()["site"])
        flash(_("Day added.") if len(added) == 1 else _("%(n)s days added.", n=len(added)))
    except ValueError:
        flash(_("Dates are YYYY-MM-DD."), "error")
        return index(), 400
    except ScheduleError as err:
        flash(MESSAGES[err.problems[0][1]](), "error")
        return index(), 400
    return redirect(url_for("schedules.index"))


@bp.route("/exceptions/<int:eid>/delete", methods=["POST"])
@requires("operator")
def delete_day(eid: int):
    if delete_exception(store(), eid, g.user["name"], now()):
        flash(_("Day removed."))
        return redirect(url_for("schedules.index"))
    return render_template("error.html", message=_("Unknown day.")), 404
