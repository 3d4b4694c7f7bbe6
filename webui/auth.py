"""Log in and out, roles, and a brake on password guessing."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from functools import wraps

from flask import (Blueprint, abort, current_app, flash, g, redirect, render_template, request,
                   session, url_for)
from flask_babel import gettext as _
from bems.users import ROLES, password_ok

from webui import now, store

bp = Blueprint("auth", __name__)
_failures: dict[str, deque] = defaultdict(deque)  # client address → failure times


def load_user():
    user = store().user(session["user"])
    if user is None or user["disabled"]:
        session.clear()
        return redirect(url_for("auth.login"))
    g.user = user
    return None


def requires(role: str):
    """Only users with at least this role (viewer < operator < admin)."""
    def deco(view):
        @wraps(view)
        def wrapped(*a, **kw):
            if ROLES.index(g.user["role"]) < ROLES.index(role):
                abort(403)
            return view(*a, **kw)
        return wrapped
    return deco


def _throttled(key: str) -> bool:
    window = current_app.config["LOGIN_WINDOW_S"]
    q = _failures[key]
    while q and q[0] < time.monotonic() - window:
        q.popleft()
    return len(q) >= current_app.config["LOGIN_MAX_FAILURES"]


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        key = request.remote_addr or "?"
        if _throttled(key):
            return render_template("login.html", error=_(
                "Too many failed attempts. Wait a few minutes and try again.")), 429
        name = request.form.get("username", "").strip()
        user = store().user(name) if name else None
        if user and not user["disabled"] and password_ok(user["password_hash"],
                                                                 request.form.get("password", "")):
            _failures.pop(key, None)
            session.clear()
            session["user"] = name
            session["lang"] = user["lang"]
            session.permanent = True
            store().audit(name, "login", {"address": key}, now())
            nxt = request.args.get("next", "")
            return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//")
                            else url_for("overview.index"))
        _failures[key].append(time.monotonic())
        store().audit(name or None, "login.failed", {"address": key}, now())
        return render_template("login.html", error=_("Wrong user name or password.")), 401
    return render_template("login.html")


@bp.route("/logout", methods=["POST"])
def logout():
    store().audit(session.get("user"), "logout", {}, now())
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/lang/<lang>", methods=["POST"])
def set_lang(lang: str):
    if lang in ("vi", "en"):
        session["lang"] = lang
        store().set_user_lang(g.user["name"], lang)
        flash(_("Language changed."))
    return redirect(request.referrer or url_for("overview.index"))
