"""Strategies: what is switched on, their parameters, and what they would write now."""

from __future__ import annotations

import dataclasses
import datetime as dt

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from bems.decision import decide
from bems.predictive.model import air_handler_areas
from bems.schedules import effective_site
from bems.strategies import params as strategy_params
from bems.strategies.params import ParamsError, StrategyParams
from webui import ctx, now, store
from webui.auth import requires

bp = Blueprint("strategies", __name__, url_prefix="/strategies")


# what a facility manager sets, grouped as the day runs: (group, [(key, label, unit, help)])
GROUPS = (
    (_l("Control"), (
        ("mode", _l("Strategy"), "",
         _l("The rule set, or a day plan from each room's learned model and the forecast.")),
        ("comfort_weight", _l("Energy ↔ comfort"), "",
         _l("Predictive: left saves more energy, right keeps rooms cooler.")),
        ("predictive_margin_k", _l("Comfort margin"), "K",
         _l("Predictive: plan this far under the comfort limit (the models' error).")),
        ("predictive_on_off", _l("Predictive: units on or off"), "",
         _l("By half hour: each unit is on or off for whole half hours and its fans are "
            "counted for every one it runs. Continuous: the fans are priced by the cooling "
            "(the plan may run units long at low load).")),
        ("min_on_min", _l("Predictive: shortest run"), _l("min"),
         _l("By half hour: a unit started runs at least this long.")),
        ("predictive_comfort", _l("Predictive: comfort"), "",
         _l("Priced: every kelvin-hour outside comfort costs what the slider says. Daily allowance: "
            "each room may be a little outside comfort for the kelvin-hours the slider allows a day (3 K·h "
            "at the left, 0.75 in the middle, none at the right), where that saves the most "
            "energy; beyond it, the slider's price.")),
    )),
    (_l("Working hours"), (
        ("occupancy", _l("Follow the working-hours schedule"), "",
         _l("AC and lights follow the schedule and the calendar; off outside them.")),
        ("occupied_setpoint", _l("Cooling setpoint in working hours"), "°C",
         _l("Never below the policy floor (25 °C for state agencies).")),
    )),
    (_l("Lunch break"), (
        ("break_ac", _l("AC over the lunch break"), "",
         _l("The rule is AC off at lunch; or a raised setpoint where staff rest.")),
        ("break_setpoint", _l("Lunch-break setpoint"), "°C",
         _l("Used when the AC stays on with a raised setpoint.")),
        ("predictive_break", _l("Predictive: the lunch break"), "",
         _l("Free: the plan cools over lunch when that is cheaper than cooling down after "
            "it. Off: the state-agency rule, AC off and restarted shortly before work.")),
        ("break_restart_min", _l("Predictive: restart before work resumes"), _l("min"),
         _l("With the lunch break off, the AC may restart at most this long before.")),
    )),
    (_l("Before work"), (
        ("optimal_start", _l("Optimal start"), "",
         _l("Cool down before work, as late as the measured cooling rate allows.")),
        ("max_lead_h", _l("Earliest cool-down before work"), _l("h"),
         _l("The most the AC may start ahead of work.")),
        ("precool_margin", _l("Cool-down safety factor"), "×",
         _l("The estimated cool-down time times this: rooms are cool when people come.")),
        ("stagger_min", _l("Gap between zone starts"), _l("min"),
         _l("Zones start this far apart, so the morning start is not one big peak.")),
    )),
    (_l("After work"), (
        ("early_stop", _l("Early stop"), "",
         _l("AC off before the end of the day where the room stays cool until then.")),
        ("early_stop_max_min", _l("Longest early stop"), _l("min"),
         _l("Never more than this before the end of the day.")),
    )),
    (_l("Lighting"), (
        ("lighting", _l("Control the lights"), "",
         _l("Lights on in working hours, off after.")),
        ("sweep_after_min", _l("Lights off after work"), _l("min"),
         _l("Lights go off this long after work ends.")),
        ("corridor_percent", _l("Corridor light level"), "%",
         _l("Corridors are lit at this level in working hours.")),
    )),
    (_l("Outdoor air"), (
        ("outdoor_air", _l("Control the outdoor-air dampers"), "",
         _l("Open while zones are occupied, shut when nobody is there.")),
        ("free_cooling_max_c", _l("Warmest outdoor air for free cooling"), "°C",
         _l("Warmer outdoor air is too humid to pre-cool with.")),
    )),
    (_l("Peak demand"), (
        ("demand_limit", _l("Limit peak demand"), "",
         _l("Setpoints are raised step by step as the load nears the target.")),
        ("peak_target_kw", _l("Peak demand target"), "kW", _l("0 means no target.")),
    )),
)
EDITABLE = tuple(k for _g, fields in GROUPS for k, *_rest in fields)
CHOICE_LABELS = {"off": _l("AC off"), "setup": _l("raised setpoint"),
                 "rules": _l("rule set"), "predictive": _l("predictive"),
                 "commissioning": _l("commissioning"), "free": _l("free (the plan decides)"),
                 "half_hour": _l("by half hour"), "continuous": _l("continuous"),
                 "price": _l("priced"), "budget": _l("daily allowance")}
MESSAGES = {
    "number_invalid": lambda: _("Enter a number."),
    "choice_invalid": lambda: _("Choose one of the options."),
    "below_policy_floor": lambda: _("The occupied setpoint cannot be below the policy floor."),
    "unknown_parameter": lambda: _("Unknown parameter."),
    "out_of_range": lambda: _("The value is outside the range this parameter allows."),
    "list_invalid": lambda: _("Enter a list of numbers in the allowed range."),
    "levels_mismatch": lambda: _("Give one threshold per demand-limit level."),
}


@bp.route("/", methods=["POST"])
@requires("admin")
def save():
    types = StrategyParams.field_types()
    values = {}
    for k in EDITABLE:
        if types[k] is bool:
            values[k] = bool(request.form.get(k))
        elif k in request.form:
            values[k] = request.form[k]
    if request.form.get("action") == "preview":
        return preview(values)
    try:
        strategy_params.save(store(), ctx()["site"], values, g.user["name"], now())
        flash(_("Strategies saved; they take effect at the next run."))
    except ParamsError as err:
        for field, code in err.problems:
            message = MESSAGES.get(code, MESSAGES["number_invalid"])
            flash(f"{LABELS.get(field, field)}: {message()}", "error")
        return index(), 400
    return redirect(url_for("strategies.index"))


LABELS = {k: label for _g, fields in GROUPS for k, label, *_rest in fields}
TRIAL_MESSAGES = {
    "days_invalid": lambda: _("Commissioning lasts 7 to 28 days."),
    "start_invalid": lambda: _("The first day must be from today to 60 days ahead."),
    "no_zone": lambda: _("No zone can be tested: none has a setpoint, a schedule and limits "
                         "that allow 25–26.5 °C."),
}


@bp.route("/commissioning", methods=["POST"])
@requires("admin")
def commissioning():
    """Start or stop commissioning (audited)."""
    from bems.strategies import commissioning as trial
    from bems.text import InputError, parse_date

    site = ctx()["site"]
    if request.form.get("action") == "stop":
        if trial.stop(store(), g.user["name"], now()) is not None:
            flash(_("Commissioning stopped; the strategy set above decides again."))
        return redirect(url_for("strategies.index") + "#commissioning")
    try:
        first = parse_date(request.form.get("first", "")[:40])
        days = request.form.get("days", "")[:40].strip()
        trial.start(store(), site, first, int(days) if days.isascii() and days.isdigit() else days,
                    g.user["name"], now())
    except InputError:
        flash(_("Enter the first day as YYYY-MM-DD."), "error")
        return index(), 400
    except trial.CommissioningError as err:
        flash(TRIAL_MESSAGES[err.code](), "error")
        return index(), 400
    flash(_("Commissioning set; it starts on its first day."))
    return redirect(url_for("strategies.index") + "#commissioning")


def preview(values: dict):
    """What would change now if these settings were saved: nothing is saved."""
    site = ctx()["site"]
    clean, problems = strategy_params.validate(values, site.control.policy_min_cooling_setpoint,
                                               from_form=True, base=site.strategies)
    if problems:
        for field, code, _msg in problems:
            flash(f"{LABELS.get(field, field)}: {MESSAGES.get(code, MESSAGES['number_invalid'])()}",
                  "error")
        return index(), 400
    t = now()
    before = {(i.point): (z.mode, i.value, i.reason)
              for z in decide(site, store(), t).zones for i in z.intents}
    after = {(i.point): (z.mode, i.value, i.reason)
             for z in decide(site, store(), t, params=clean).zones for i in z.intents}
    points = {p.id: p.name or p.id for p in site.points}
    changes = [{"point": points.get(pid, pid), "id": pid,
                "before": before.get(pid, (None, None, ""))[1], "after": a[1], "why": a[2]}
               for pid, a in sorted(after.items())
               if before.get(pid, (None, None, ""))[1] != a[1]]
    changes += [{"point": points.get(pid, pid), "id": pid, "before": b[1], "after": None,
                 "why": ""} for pid, b in sorted(before.items()) if pid not in after]
    return index(preview=changes, entered=clean)


@bp.route("/")
def index(preview: list | None = None, entered: dict | None = None):
    base = ctx()["site"]
    site = effective_site(base, store())
    d = decide(base, store(), now())
    params = {**dataclasses.asdict(site.strategies), **(entered or {})}
    defaults = dataclasses.asdict(base.strategies)
    types = StrategyParams.field_types()
    names = {z.id: z.name for z in base.zones}
    points = {p.id: p.name or p.id for p in base.points}
    # the dry run by zone name, each write with its point's name and a plain reason
    rows = sorted(({"zone": names.get(z.zone) or points.get(z.zone, z.zone), "id": z.zone,
                    "mode": z.mode, "intents": z.intents, "points": points} for z in d.zones),
                  key=lambda r: r["zone"])
    return render_template("strategies.html", rows=rows, params=params, level=d.level,
                           groups=GROUPS, defaults=defaults, ranges=strategy_params.RANGES,
                           choices=CHOICE_LABELS, options=strategy_params.CHOICES,
                           floor=base.control.policy_min_cooling_setpoint,
                           bools={k for k, t in types.items() if t is bool}, preview=preview,
                           decision=d, predictive=predictive_status(base, d),
                           trial=trial_status(base))


def trial_status(site) -> dict:
    """Commissioning: what is set, each working day's tests per floor, the day to offer."""
    from bems.calendar import SiteCalendar
    from bems.strategies import commissioning as trial

    c = trial.current(store())
    today = now().astimezone(site.tz).date()
    return {"set": c, "today": today, "tomorrow": today + dt.timedelta(days=1),
            "days": trial.table(site, SiteCalendar(site), c) if c is not None else [],
            "over": c is not None and c.end <= today,
            "last": c.end - dt.timedelta(days=1) if c is not None else None,
            "min": trial.MIN_DAYS, "max": trial.MAX_DAYS}


NOTES = {
    "nobody_today": _l("nobody comes any more today"),
    "no_model": _l("no fitted model for"), "no_temperature": _l("no current temperature for"),
    "no_forecast": _l("no outdoor forecast"), "solver_failed": _l("the solver found no plan"),
    "too_slow": _l("the solver was too slow"),
    "rules_cheaper": _l("every zone: the rule set's own schedule, priced on the same models, "
                        "costs less than the plan"),
}
WEATHER = {"forecast": _l("the provider's forecast"),
           "persistence": _l("persistence (the same hours yesterday)"),
           "current": _l("the outdoor temperature now, held (no yesterday yet)"),
           "weather file + forecast error": _l("the weather file with a forecast's error")}


def note_text(note: str, names: dict[str, str]) -> str:
    """A predictive note ("code: detail") in the reader's language."""
    if not note:
        return ""
    code, _sep, detail = note.partition(":")
    text = str(NOTES.get(code.strip(), code))
    if code.strip() in ("no_model", "no_temperature") and detail.strip():
        text += " " + ", ".join(names.get(z.strip(), z.strip()) for z in detail.split(","))
    elif detail.strip():
        text += f" ({detail.strip()})"
    return text


def predictive_status(site, d) -> dict:
    """The zone models (fit error per zone), the plan in use and why zones follow the rules."""
    from bems.predictive import store as pstore

    names = {z.id: z.name for z in site.zones}
    model = pstore.load_model(store())
    zones = []
    if model is not None:
        for z in site.zones:
            m = model.zones.get(z.id)
            if m is not None:
                zones.append({"id": z.id, "name": z.name, "fit": m.fit,
                              "rmse_1h": m.rmse_1h, "rmse_4h": m.rmse_4h,
                              "why": _("the 4-hour error is over 1.5 K") if m.why.startswith(
                                  "4-hour") else (_("too little data with the AC off")
                                                  if m.why else ""),
                              "samples": m.samples})
    plan = d.plan
    area = sum(z.area_m2 for z in site.zones if z.ac_status)
    elec = None
    if model is not None and model.elec_r2:
        # the building's electricity model in the units people check: kW for all the zones
        elec = {"r2": model.elec_r2, "on_kw": model.fan_kw_m2 * area,
                "cold_kw_per_k": model.k_cold * area, "base_kw": model.p0,
                "ahu_kw": model.ahu_kw_m2 * sum(a for a, _ in air_handler_areas(
                    site, [z.id for z in site.zones])),
                "heldout": model.elec_heldout_cv_pct}
    return {"model": model, "zones": zones, "elec": elec,
            "made_at": dt.datetime.fromisoformat(plan.made_at) if plan else None,
            "fitted_at": dt.datetime.fromisoformat(model.fitted_at) if model else None,
            "note": note_text(d.note, names), "plan": plan,
            "weather": WEATHER.get(plan.weather, plan.weather) if plan else ""}
