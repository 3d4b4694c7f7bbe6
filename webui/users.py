"""Users (admins only): who may log in, with which role."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from bems.users import ROLES, UserError, save_user
from webui import now, store
from webui.auth import requires

bp = Blueprint("users", __name__, url_prefix="/users")
MESSAGES = {
    "name_role": lambda: _("Give a user name and a role."),
    "password_short": lambda: _("The password needs at least 8 characters."),
    "lang": lambda: _("Choose one of the options."),
}


@bp.route("/", methods=["GET", "POST"])
@requires("admin")
def index():
    error = None
    if request.method == "POST":
        try:
            save_user(store(), request.form.get("name", ""), request.form.get("role", ""),
                      request.form.get("password", ""), request.form.get("lang", "vi"),
                      g.user["name"], now())
            flash(_("User saved."))
            return redirect(url_for("users.index"))
        except UserError as err:
            error = MESSAGES.get(err.code, MESSAGES["name_role"])()
    return render_template("users.html", users=store().users(), roles=ROLES, error=error), \
        (400 if error else 200)
