"""Alarms: stale devices, zones out of band, AC or lights after hours, policy; acknowledge."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from bems.status import acknowledge
from webui import ctx, now, state, store
from webui.auth import requires

bp = Blueprint("alarms", __name__, url_prefix="/alarms")


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
