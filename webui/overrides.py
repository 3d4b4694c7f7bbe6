"""Overrides: a setpoint or on/off for a zone until it expires; list and release."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from bems.overrides import OverrideError, add_override, release_override
from bems.text import parse_local_datetime, parse_number
from webui import ctx, now, store
from webui.auth import requires

bp = Blueprint("overrides", __name__, url_prefix="/overrides")

MESSAGES = {
    "unknown_point": lambda: _("Choose a zone and what to override."),
    "not_writable": lambda: _("That point cannot be commanded."),
    "expiry_past": lambda: _("The expiry must be in the future."),
    "out_of_limits": lambda: _("The value is outside the zone's limits."),
    "not_overridable": lambda: _("That point cannot be commanded."),
    "number_invalid": lambda: _("Enter a number."),
    "on_off": lambda: _("On/off takes 1 (on) or 0 (off)."),
    "too_long": lambda: _("An override lasts at most 7 days; change the schedule instead."),
    "below_policy_floor": lambda: _("A cooling setpoint cannot be below the policy floor."),
}
TARGETS = (("cooling_setpoint", "Setpoint (°C)"), ("ac_status", "AC on/off"),
           ("lighting", "Lights on/off"))


def _targets(site):
    return [(getattr(z, attr), z, label) for z in site.zones for attr, label in TARGETS
            if getattr(z, attr)]


@bp.route("/", methods=["GET", "POST"])
def index():
    site = ctx()["site"]
    error = None
    if request.method == "POST":
        if g.user["role"] == "viewer":
            return render_template("error.html", message=_("Viewers cannot change anything.")), 403
        try:
            value = parse_number(request.form.get("value", ""))
            # a time with an offset keeps its instant; without one it is the site's local time
            expires = parse_local_datetime(request.form.get("expires", ""), site.tz)
            add_override(site, store(), request.form.get("point", ""), value, expires,
                         g.user["name"], request.form.get("reason", ""), now())
            flash(_("Override set; it applies at the next strategy run."))
            return redirect(url_for("overrides.index"))
        except ValueError:  # InputError too: digits 0-9, a year 2000-2100
            error = _("Enter a number and an expiry date and time.")
        except OverrideError as err:
            error = MESSAGES[err.code]()
    default_exp = (now().astimezone(site.tz) + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    return render_template("overrides.html", targets=_targets(site),
                           active=store().overrides(active_at=now()), error=error,
                           default_exp=default_exp,
                           # a zone's page links here with ?point=… chosen
                           form=request.form if request.method == "POST" else request.args), \
        (400 if error else 200)


@bp.route("/<int:oid>/release", methods=["POST"])
@requires("operator")
def release(oid: int):
    if release_override(store(), oid, g.user["name"], now()):
        flash(_("Override released."))
    return redirect(url_for("overrides.index"))
