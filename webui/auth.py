"""Log in and out, roles, sessions held on the server, and a brake on password guessing.

The brake counts failed logins per (address, account), per account and per address over a
window; an attempt is counted *before* the password is checked (under a lock), so concurrent
guesses cannot slip past it, and a success clears only its own (address, account) count. A
wrong user name costs the same time as a wrong password. Sessions live in the database: logout,
a password change or a disabled account ends them whatever the browser still holds.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict, deque
from functools import wraps
from urllib.parse import unquote, urlsplit

from flask import (Blueprint, abort, current_app, flash, g, redirect, render_template, request,
                   session, url_for)
from flask_babel import gettext as _

from bems.text import clean_text
from bems.users import MAX_NAME, ROLES, password_ok
from webui import now, store

bp = Blueprint("auth", __name__)


class LoginBrake:
    LIMITS = {"pair": 5, "account": 20, "address": 50}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[tuple, deque] = defaultdict(deque)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def _keys(self, address: str, name: str) -> dict[str, tuple]:
        return {"pair": ("pair", address, name), "account": ("account", name),
                "address": ("address", address)}

    def begin(self, address: str, name: str, window_s: float) -> bool:
        """Count an attempt as failed until it succeeds; False if the brake is on."""
        t = time.monotonic()
        with self._lock:
            keys = self._keys(address, name)
            for kind, key in keys.items():
                q = self._events[key]
                while q and q[0] < t - window_s:
                    q.popleft()
                if len(q) >= self.LIMITS[kind]:
                    return False
            for key in keys.values():
                self._events[key].append(t)
            return True

    def succeeded(self, address: str, name: str) -> None:
        with self._lock:
            keys = self._keys(address, name)
            self._events.pop(keys["pair"], None)
            for kind in ("account", "address"):
                q = self._events.get(keys[kind])
                if q:
                    q.pop()  # this attempt was not a failure after all


brake = LoginBrake()


def load_user():
    sid, name = session.get("sid"), session.get("user")
    user = store().user(name) if sid and name else None
    if user is None or user["disabled"] or store().session_user(sid, now()) != name:
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


def safe_next(target: str) -> str | None:
    """A path on this site to go to after login, or None: never another host, however it is
    spelled (//host, /\\host, /%09/host, schemes, control characters)."""
    decoded = unquote(unquote(target or ""))
    if not target.startswith("/") or any(ord(c) < 33 or c in "\\" for c in decoded):
        return None
    parts = urlsplit(decoded)
    if parts.scheme or parts.netloc or decoded.startswith("//"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        address = request.remote_addr or "?"
        name = clean_text(request.form.get("username", ""), MAX_NAME + 1)
        if len(name) > MAX_NAME:
            name = ""
        if not brake.begin(address, name, current_app.config["LOGIN_WINDOW_S"]):
            return render_template("login.html", error=_(
                "Too many failed attempts. Wait a few minutes and try again.")), 429
        user = store().user(name) if name else None
        ok = password_ok(user["password_hash"] if user else None,
                         request.form.get("password", ""))
        if ok and not user["disabled"]:
            brake.succeeded(address, name)
            sid = secrets.token_urlsafe(32)
            store().create_session(sid, name, now(),
                                   now() + current_app.config["PERMANENT_SESSION_LIFETIME"])
            session.clear()
            session.update(user=name, sid=sid, lang=user["lang"])
            session.permanent = True
            store().audit(name, "login", {"address": address}, now())
            nxt = safe_next(request.args.get("next", ""))
            return redirect(nxt or url_for(current_app.config["HOME_ENDPOINT"]))
        store().audit(name or None, "login.failed", {"address": address}, now())
        return render_template("login.html", error=_("Wrong user name or password.")), 401
    return render_template("login.html")


@bp.route("/logout", methods=["POST"])
def logout():
    if session.get("sid"):
        store().end_sessions(session_id=session["sid"])
    store().audit(session.get("user"), "logout", {}, now())
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/lang/<lang>", methods=["POST"])
def set_lang(lang: str):
    if lang in ("vi", "en"):
        session["lang"] = lang
        store().set_user_lang(g.user["name"], lang)
        flash(_("Language changed."))
    back = safe_next(urlsplit(request.referrer or "").path or "")
    return redirect(back or url_for(current_app.config["HOME_ENDPOINT"]))
