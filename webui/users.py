"""Users (admins only): who may log in, with which role; passwords, disable, delete."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from bems import users as accounts
from bems.users import ROLES, UserError
from webui import now, store
from webui.auth import requires

bp = Blueprint("users", __name__, url_prefix="/users")
MESSAGES = {
    "name_invalid": lambda: _("Give a user name (up to 64 characters)."),
    "role_invalid": lambda: _("Give a user name and a role."),
    "password_short": lambda: _("The password needs at least 10 characters."),
    "password_weak": lambda: _("That password is too easy to guess."),
    "lang": lambda: _("Choose one of the options."),
    "name_taken": lambda: _("There is already a user with that name."),
    "unknown_user": lambda: _("Unknown user."),
    "last_admin": lambda: _("The last active admin must stay an active admin."),
}


def _page(error: str | None = None):
    return render_template("users.html", users=store().users(), roles=ROLES, error=error,
                           tokens=store().tokens()), (400 if error else 200)


@bp.route("/tokens/revoke", methods=["POST"])
@requires("admin")
def revoke_token():
    """Revoke a read API token (they are made with `bems token create`, shown once)."""
    name = request.form.get("name", "")[:64]
    if store().revoke_token(name, now()):
        store().audit(g.user["name"], "token.revoke", {"name": name}, now())
        flash(_("Token revoked."))
        return redirect(url_for("users.index"))
    return _page(_("No active token has that name."))


@bp.route("/", methods=["GET", "POST"])
@requires("admin")
def index():
    if request.method == "POST":
        try:
            accounts.add_user(store(), request.form.get("name", ""),
                              request.form.get("role", ""), request.form.get("password", ""),
                              request.form.get("lang", "vi"), g.user["name"], now())
            flash(_("User saved."))
            return redirect(url_for("users.index"))
        except UserError as err:
            return _page(MESSAGES.get(err.code, MESSAGES["role_invalid"])())
    return _page()


@bp.route("/change", methods=["POST"])
@requires("admin")
def change():
    name, action = request.form.get("name", ""), request.form.get("action", "")
    by, t = g.user["name"], now()
    try:
        if action == "password":
            accounts.set_password(store(), name, request.form.get("password", ""), by, t)
        elif action == "role":
            accounts.set_role(store(), name, request.form.get("role", ""), by, t)
        elif action in ("disable", "enable"):
            accounts.set_disabled(store(), name, action == "disable", by, t)
        elif action == "delete":
            accounts.delete_user(store(), name, by, t)
        else:
            return _page(_("Choose one of the options."))
    except UserError as err:
        return _page(MESSAGES.get(err.code, MESSAGES["role_invalid"])())
    flash(_("User saved."))
    return redirect(url_for("users.index"))
