"""The facility managers' web UI: `create_app` is handed the site and the database (and, when it
runs beside the runtime, the runtime); one blueprint per screen; Vietnamese and English. The
login, roles, audit, languages and security headers are the shell it shares with the city's
program (`webui.shell`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable

from flask import g
from flask_babel import lazy_gettext as _l

from bems.site import Site
from bems.storage import Store

NAV = [("overview.index", _l("Overview")), ("zones.index", _l("Zones")),
       ("schedules.index", _l("Schedules")), ("overrides.index", _l("Overrides")),
       ("strategies.index", _l("Strategies")), ("trends.index", _l("Trends")),
       ("forecasts.index", _l("Forecasts")), ("alarms.index", _l("Alarms")),
       ("faults.index", _l("Faults")), ("reports.index", _l("Reports"))]


def create_app(site: Site, db_path: Path, runtime: Any = None,
               test_config: dict | None = None,
               clock: Callable[[], dt.datetime] | None = None) -> "Flask":  # noqa: F821
    """The site's UI over its store (and beside its runtime, when there is one)."""
    from webui import (alarms, faults, forecasts, health, live, overrides, overview, reports,
                       schedules, settings, strategies, trends, zones)
    from webui.shell import create_shell

    screens = (overview.bp, zones.bp, schedules.bp, overrides.bp, strategies.bp, trends.bp,
               forecasts.bp, alarms.bp, faults.bp, reports.bp, live.bp, health.bp, settings.bp)
    app = create_shell(site, db_path, screens=screens, nav=NAV, home_endpoint="overview.index",
                       clock=clock, test_config=test_config,
                       extensions={"runtime": runtime}, live=True)
    from webui.api import init_api

    init_api(app)
    from bems.status import alarm_text
    from webui.i18n import text_lang

    app.jinja_env.globals["alarm_text"] = lambda kind, target, value: alarm_text(
        kind, target, value, text_lang())
    app.jinja_env.globals["has_settings"] = True  # (the city's app, on the same shell, has none)
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
