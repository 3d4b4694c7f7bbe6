"""The shell both web programs share (the site's UI, `webui.create_app`, and the city's,
`city.web.create_city_app`): login, sessions and the brake on guessing, roles, the audit of
every action, Vietnamese and English, CSRF, the security headers, the error pages. An app is
the shell, its navigation and its screens (blueprints); the shell knows nothing of either."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any, Callable

from flask import Flask, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect
from jinja2 import BytecodeCache

from bems.i18n import LOCALE_DIR
from webui import i18n

csrf = CSRFProtect()
# everything is served from here: no script, font or style from anywhere else; no framing
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


class _CompiledTemplates(BytecodeCache):
    """The templates compiled once per process, for every app made in it (a test makes
    hundreds); keyed by Jinja on the template's name and its source's checksum."""

    def __init__(self):
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_TEMPLATES = _CompiledTemplates()


class _SessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def create_shell(site: Any, db_path: Path, *, screens: tuple, nav: list[tuple[str, Any]],
                 home_endpoint: str, clock: Callable[[], dt.datetime] | None = None,
                 test_config: dict | None = None, extensions: dict | None = None,
                 live: bool = False) -> Flask:
    """An app: the shell around `screens` (blueprints), with `nav` [(endpoint, label)] in the
    header; `site` names it and gives its time zone and [web] settings; `db_path` holds its
    users, sessions and audit; `extensions` is what its screens find in `ctx()`; `live`:
    the page script that refreshes live values."""
    app = Flask("webui")
    app.jinja_options = {**app.jinja_options, "bytecode_cache": _TEMPLATES}
    app.session_interface = _SessionInterface()
    app.config.update(
        SECRET_KEY=secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Secure whenever the request came over HTTPS (directly, or through a trusted proxy);
        # True here forces it even over plain HTTP
        SESSION_COOKIE_SECURE=False,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=site.web.session_hours),
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_DEFAULT_LOCALE="vi",
        BABEL_TRANSLATION_DIRECTORIES=str(LOCALE_DIR),
        LOGIN_WINDOW_S=600,
        MAX_CONTENT_LENGTH=1024 * 1024,  # no form of ours is bigger
        MAX_FORM_MEMORY_SIZE=256 * 1024,
        MAX_FORM_PARTS=2000,
        HOME_ENDPOINT=home_endpoint,
    )
    if site.web.trust_proxy:  # only when the site says a reverse proxy is in front
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)
    if test_config:
        app.config.update(test_config)
    app.extensions["bems"] = {"site": site, "db": Path(db_path),
                              "clock": clock or (lambda: dt.datetime.now(dt.timezone.utc)),
                              **(extensions or {})}
    csrf.init_app(app)
    Babel(app, locale_selector=i18n.select_locale)
    i18n.register_filters(app)
    from webui import words

    words.register(app)

    from webui import audit, auth, users

    for bp in (auth.bp, *screens, audit.bp, users.bp):
        app.register_blueprint(bp)

    @app.before_request
    def _require_login():
        if request.endpoint in ("auth.login", "static", "health.healthz") or \
                request.endpoint is None or request.blueprint in ("api", "api-docs"):
            # (the read API takes a bearer token, never the session: webui/api.py)
            return None
        if not session.get("user"):
            return redirect(url_for("auth.login", next=request.full_path))
        return auth.load_user()

    @app.after_request
    def _headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.errorhandler(403)
    def _forbidden(_err):
        from flask import render_template
        from flask_babel import gettext as _

        from webui import now, store

        user = g.get("user")
        store().audit(user["name"] if user else None, "forbidden",
                      {"path": request.path[:200], "method": request.method}, now())
        return render_template("error.html", message=_("You may not do that.")), 403

    @app.errorhandler(413)
    def _too_large(_err):
        from flask import render_template
        from flask_babel import gettext as _

        return render_template("error.html", message=_("That request is too large.")), 413

    @app.teardown_appcontext
    def _close(_exc):
        store = g.pop("store", None)
        if store is not None:
            store.close()

    @app.context_processor
    def _globals():
        from webui import now

        return {"site": site, "user": g.get("user"), "locale": i18n.current_locale(),
                "now_local": now().astimezone(site.tz), "nav_items": nav,
                "live_script": live}

    return app
