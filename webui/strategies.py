"""Strategies: what is switched on, their parameters, and what they would write now."""

from __future__ import annotations

import dataclasses

from flask import Blueprint, render_template

from bems.calendar import SiteCalendar
from bems.schedules import effective_site
from bems.strategies.plan import Learned, Override, plan
from webui import ctx, now, store

bp = Blueprint("strategies", __name__, url_prefix="/strategies")


@bp.route("/")
def index():
    site = effective_site(ctx()["site"], store())
    t = now()
    runtime = ctx()["runtime"]
    latest = store().latest(now=t, lookback_s=3 * 3600)
    values = {k: v for k, (_, v, q) in latest.items() if q == "good"}
    ovs = [Override(o["point"], o["value"], o["expires_at"], o["created_by"], o["reason"])
           for o in store().overrides(active_at=t)]
    learned = runtime.learned if runtime is not None else Learned()
    level = runtime.level if runtime is not None else 0
    local = t.astimezone(site.tz).replace(tzinfo=None)
    decisions = plan(site, SiteCalendar(site), values, local, learned, level, ovs, now_aware=t)
    params = dataclasses.asdict(site.strategies)
    return render_template("strategies.html", decisions=decisions, params=params, level=level)
