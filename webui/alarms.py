"""Alarms: what is active now (acknowledge), and the alarm log (every occurrence: raised,
acknowledged by whom, cleared, and the messages it sent), filtered and exported as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from bems.site import SEVERITIES
from bems.status import SEVERITY, acknowledge
from bems.text import safe_rows
from webui import ctx, now, state, store
from webui.auth import requires

bp = Blueprint("alarms", __name__, url_prefix="/alarms")
STATES = ("open", "cleared", "unacknowledged")
MAX_ROWS = 5000


@bp.route("/")
def index():
    return render_template("alarms.html", alarms=state.alarms(ctx()["site"], store(), now()))


@bp.route("/ack", methods=["POST"])
@requires("operator")
def ack():
    key = request.form.get("key", "")[:200]
    if acknowledge(ctx()["site"], store(), key, g.user["name"], now()):
        flash(_("Alarm acknowledged."))
        return redirect(url_for("alarms.index"))
    flash(_("That alarm is not active."), "error")
    return index(), 400


def _filters() -> tuple[dict, str | None]:
    """The history's filters from the query; unknown values are an error, not ignored."""
    site = ctx()["site"]
    a = request.args
    f = {"kind": a.get("kind", ""), "state": a.get("state", ""), "key": a.get("key", "")[:200],
         "severity": a.get("severity", ""), "from": a.get("from", ""), "to": a.get("to", "")}
    if f["kind"] and f["kind"] not in SEVERITY:
        return f, _("Unknown kind of alarm.")
    if f["state"] and f["state"] not in STATES:
        return f, _("Unknown state.")
    if f["severity"] and f["severity"] not in SEVERITIES:
        return f, _("Unknown severity.")
    today = now().astimezone(site.tz).date()
    try:
        start = dt.date.fromisoformat(f["from"]) if f["from"] else today - dt.timedelta(days=30)
        end = dt.date.fromisoformat(f["to"]) if f["to"] else today
    except ValueError:
        return f, _("A date is YYYY-MM-DD.")
    if not (2000 <= start.year <= 2100 and 2000 <= end.year <= 2100) or end < start:
        return f, _("The period is not valid.")
    f["since"] = dt.datetime.combine(start, dt.time(), tzinfo=site.tz)
    f["until"] = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=site.tz)
    f["from"], f["to"] = start.isoformat(), end.isoformat()
    return f, None


def _rows(f: dict) -> list[dict]:
    rows = store().alarm_history(f["since"], f["until"], kind=f["kind"] or None,
                                 state=f["state"] or None, limit=MAX_ROWS)
    if f["key"]:
        rows = [r for r in rows if r["key"] == f["key"]]
    if f["severity"]:
        rows = [r for r in rows if r["severity"] == f["severity"]]
    for r in rows:
        end = r["cleared"] or now()
        r["minutes"] = max(0.0, (end - r["raised"]).total_seconds() / 60)
        r["ack_min"] = (r["acked"] - r["raised"]).total_seconds() / 60 if r["acked"] else None
    return rows


@bp.route("/history")
def history():
    f, error = _filters()
    if error:
        flash(error, "error")
        return render_template("alarm_history.html", rows=[], f=f, kinds=list(SEVERITY),
                               severities=SEVERITIES, states=STATES), 400
    return render_template("alarm_history.html", rows=_rows(f), f=f, kinds=list(SEVERITY),
                           severities=SEVERITIES, states=STATES, max_rows=MAX_ROWS)


@bp.route("/history.csv")
def history_csv():
    f, error = _filters()
    if error:
        return Response(error + "\n", status=400, mimetype="text/plain")
    tz = ctx()["site"].tz

    def local(t):
        return t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if t else ""

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["raised_local", "cleared_local", "acknowledged_local", "acknowledged_by", "kind",
                "severity", "target", "value", "minutes_open", "minutes_to_acknowledge",
                "notifications_sent", "notifications_pending"])
    w.writerows(safe_rows([local(r["raised"]), local(r["cleared"]), local(r["acked"]),
                           r["acked_by"] or "", r["kind"], r["severity"], r["target"],
                           "" if r["value"] is None else r["value"], round(r["minutes"], 1),
                           "" if r["ack_min"] is None else round(r["ack_min"], 1), r["sent"],
                           r["pending"]] for r in _rows(f)))
    name = f"alarms-{f['from']}-{f['to']}.csv"
    return Response(buf.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
