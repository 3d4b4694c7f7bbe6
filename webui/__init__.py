"""The facility managers' web UI: `create_app` is handed the site and the database (and, when it
runs beside the runtime, the runtime); one blueprint per screen; Vietnamese and English."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any, Callable

from flask import Flask, g, redirect, request, session, url_for
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from bems.site import Site
from bems.storage import Store
from webui import i18n

csrf = CSRFProtect()


def create_app(site: Site, db_path: Path, runtime: Any = None,
               test_config: dict | None = None,
               clock: Callable[[], dt.datetime] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=True,  # browsers treat http://127.0.0.1 as secure too
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=10),
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_DEFAULT_LOCALE="vi",
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
        LOGIN_MAX_FAILURES=5,
        LOGIN_WINDOW_S=600,
    )
    if test_config:
        app.config.update(test_config)
    app.extensions["bems"] = {"site": site, "db": Path(db_path), "runtime": runtime,
                              "clock": clock or (lambda: dt.datetime.now(dt.timezone.utc))}
    csrf.init_app(app)
    Babel(app, locale_selector=i18n.select_locale)
    i18n.register_filters(app)

    from webui import (alarms, audit, auth, forecasts, overrides, overview, reports, schedules,
                       strategies, trends, users, zones)
    for bp in (auth.bp, overview.bp, zones.bp, schedules.bp, overrides.bp, strategies.bp,
               trends.bp, forecasts.bp, alarms.bp, reports.bp, audit.bp, users.bp):
        app.register_blueprint(bp)

    @app.before_request
    def _require_login():
        if request.endpoint in ("auth.login", "static") or request.endpoint is None:
            return None
        if not session.get("user"):
            return redirect(url_for("auth.login", next=request.full_path))
        return auth.load_user()

    @app.teardown_appcontext
    def _close(_exc):
        store = g.pop("store", None)
        if store is not None:
            store.close()

    @app.context_processor
    def _globals():
        return {"site": site, "user": g.get("user"), "locale": i18n.current_locale(),
                "now_local": now().astimezone(site.tz)}

    return app


def ctx() -> dict:
    from flask import current_app

    return current_app.extensions["bems"]


def store() -> Store:
    if "store" not in g:
        c = ctx()
        g.store = Store(c["db"], c["site"].timezone)
    return g.store


def now() -> dt.datetime:
    return ctx()["clock"]()
