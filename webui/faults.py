"""Faults: the list, most costly first; a page per fault with its evidence, its likely cause
and what to check; acknowledge, assign or close it with a note (audited)."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from bems.faults import target_name
from bems.faults.rules import RULES
from bems.faults.texts import fault_text
from bems.text import clean_text
from webui import charts, ctx, now, store
from webui.auth import requires
from webui.i18n import current_locale

bp = Blueprint("faults", __name__, url_prefix="/faults")
WINDOW_DAYS = 30
NOTE_MAX = 500
NAME_MAX = 64


def _rows(faults: list[dict]) -> list[dict]:
    site, lang = ctx()["site"], str(current_locale())
    for f in faults:
        f["name"] = target_name(site, f["target_kind"], f["target"])
        f.update(fault_text(f["rule"], f["evidence"], f["name"], lang))
    return faults


def active_count(days: int = 7) -> int:
    return sum(store().count_faults(now() - dt.timedelta(days=days)).values())


def by_kind(rows: list[dict]) -> list[dict]:
    """Open faults grouped by rule, most costly first: what a facility manager reads before
    the list (fifteen zones cooled below the floor are one problem, not fifteen). Each kind's
    title is written once, not each fault's texts."""
    lang = str(current_locale())
    kinds: dict[str, dict] = {}
    for f in rows:
        if f["status"] == "closed":
            continue
        k = kinds.get(f["rule"])
        if k is None:
            title = fault_text(f["rule"], f["evidence"], f["target"], lang)["title"]
            k = kinds[f["rule"]] = {"rule": f["rule"], "title": title, "places": {}}
        # a place's cost a day once, from its newest occurrence (two occurrences of the same
        # fault in the window are one place, not twice its cost)
        seen = k["places"].get(f["target"])
        if seen is None or f["last"] > seen["last"]:
            k["places"][f["target"]] = f
    for k in kinds.values():
        k["vnd_per_day"] = sum(f["vnd_per_day"] or 0.0 for f in k["places"].values())
        k["places"] = len(k["places"])
    return sorted(kinds.values(), key=lambda k: (-k["vnd_per_day"], -k["places"], k["rule"]))


def open_by_kind(days: int = 7) -> list[dict]:
    return by_kind(store().faults(since=now() - dt.timedelta(days=days), status="active"))


def for_target(target: str) -> list[dict]:
    return _rows(store().faults(since=now() - dt.timedelta(days=WINDOW_DAYS), status="active",
                                target=target))


@bp.route("/")
def index():
    show_all = request.args.get("all") == "1"
    rule = request.args.get("rule", "")
    if rule and rule not in RULES:
        flash(_("Unknown kind of fault."), "error")
        rule = ""
    rows = _rows(store().faults(since=now() - dt.timedelta(days=WINDOW_DAYS),
                                status=None if show_all else "active"))
    kinds = by_kind(rows)
    if rule:
        rows = [f for f in rows if f["rule"] == rule]
    # the open faults' cost a day, each place once per kind (as the kinds count it)
    total = sum(k["vnd_per_day"] for k in kinds if not rule or k["rule"] == rule)
    return render_template("faults.html", faults=rows, show_all=show_all, total_vnd=total,
                           days=WINDOW_DAYS, kinds=kinds, rule=rule,
                           rule_title=rows[0]["title"] if rule and rows else "")


@bp.route("/<int:fid>")
def fault(fid: int):
    f = store().fault(fid)
    if f is None:
        abort(404)
    f = _rows([f])[0]
    site = ctx()["site"]
    start = f["first"] - dt.timedelta(hours=6)
    end = min(f["last"] + dt.timedelta(hours=6), now())
    hours = max(1.0, (end - start).total_seconds() / 3600)
    known = {p.id: p for p in site.points}
    points = [p for p in f["evidence"].get("points", []) if p in known][:4]
    groups: dict[str, list] = {}  # one chart per unit: °C apart from on/off and kW
    for pid in points:
        p = known[pid]
        pts = [((ts - start).total_seconds() / 3600, v)
               for ts, v, _q in store().readings(pid, start, end) if v is not None]
        on_off = p.kind in ("status", "lighting", "occupancy", "outdoor_air")
        groups.setdefault("on/off" if on_off else (p.unit or p.kind), []).append(
            (p.name or pid, pts))
    local0 = start.astimezone(site.tz)
    step = max(1, int(hours // 4))
    x_labels = [(h, (local0 + dt.timedelta(hours=h)).strftime("%d/%m %H:%M"))
                for h in range(0, int(hours) + 1, step)]
    charts_ = [charts.lines(series, unit="" if unit == "on/off" else unit, x_labels=x_labels,
                            x_range=(0, hours), from_zero=unit in ("on/off", "kW", "kWh"),
                            height=120 if unit == "on/off" else 200)
               for unit, series in groups.items()]
    users = [u["name"] for u in store().users() if not u.get("disabled")]
    return render_template("fault.html", f=f, charts=charts_, points=points, users=users)


@bp.route("/<int:fid>/update", methods=["POST"])
@requires("operator")
def update(fid: int):
    status = request.form.get("status", "")
    if status not in ("", "acknowledged", "closed", "open"):
        flash(_("Choose a status from the list."), "error")
        return redirect(url_for("faults.fault", fid=fid))
    assignee = clean_text(request.form.get("assignee", ""), NAME_MAX) or None
    note = clean_text(request.form.get("note", ""), NOTE_MAX)
    if status == "closed" and not note:
        flash(_("Say what was done when you close a fault."), "error")
        return redirect(url_for("faults.fault", fid=fid))
    if not store().update_fault(fid, g.user["name"], now(), status=status or None,
                                assignee=assignee, note=note):
        abort(404)
    flash(_("Fault updated."))
    return redirect(url_for("faults.fault", fid=fid))
