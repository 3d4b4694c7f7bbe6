"""Strategies: what is switched on, their parameters, and what they would write now."""

from __future__ import annotations

import dataclasses

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from bems.decision import decide
from bems.schedules import effective_site
from bems.strategies import params as strategy_params
from bems.strategies.params import ParamsError, StrategyParams
from webui import ctx, now, store
from webui.auth import requires

bp = Blueprint("strategies", __name__, url_prefix="/strategies")


EDITABLE = ("occupancy", "optimal_start", "early_stop", "lighting", "outdoor_air",
            "demand_limit", "occupied_setpoint", "break_ac", "break_setpoint", "max_lead_h",
            "precool_margin", "stagger_min", "early_stop_max_min", "sweep_after_min",
            "corridor_percent", "peak_target_kw", "free_cooling_max_c")
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
    try:
        strategy_params.save(store(), ctx()["site"], values, g.user["name"], now())
        flash(_("Strategies saved; they take effect at the next run."))
    except ParamsError as err:
        for field, code in err.problems:
            message = MESSAGES.get(code, MESSAGES["number_invalid"])
            flash(f"{field}: {message()}", "error")
        return index(), 400
    return redirect(url_for("strategies.index"))


@bp.route("/")
def index():
    site = effective_site(ctx()["site"], store())
    d = decide(ctx()["site"], store(), now())
    decisions, level = d.zones, d.level
    params = dataclasses.asdict(site.strategies)
    types = StrategyParams.field_types()
    return render_template("strategies.html", decisions=decisions, params=params, level=level,
                           editable=EDITABLE, bools={k for k, t in types.items() if t is bool})
