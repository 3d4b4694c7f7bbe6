"""Users (admins only): who may log in, with which role."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from webui import now, store
from webui.auth import ROLES, hash_password, requires

bp = Blueprint("users", __name__, url_prefix="/users")


@bp.route("/", methods=["GET", "POST"])
@requires("admin")
def index():
    error = None
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        role = request.form.get("role", "")
        password = request.form.get("password", "")
        if not name or role not in ROLES:
            error = _("Give a user name and a role.")
        elif len(password) < 8:
            error = _("The password needs at least 8 characters.")
        else:
            store().add_user(name, role, hash_password(password), request.form.get("lang", "vi"))
            store().audit(g.user["name"], "user.add", {"name": name, "role": role}, now())
            flash(_("User saved."))
            return redirect(url_for("users.index"))
    return render_template("users.html", users=store().users(), roles=ROLES, error=error), \
        (400 if error else 200)
