"""The one decision path: what the strategies want now, from the store.

`decide` gathers every input of the planner — the site with its stored schedule edits,
exception days and strategy parameters; the latest good readings; the zones' learned cool-down
and warm-up rates; the demand level (live load, the next hour's forecast, and the level before,
for hysteresis); the overrides in force; and the time — and returns the planner's decisions.
The runtime, `bems strategies dry-run` and the web preview all call it, so for the same store
and time they show the same intents. Only the runtime commits the demand level it decided.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bems.calendar import SiteCalendar
from bems.intents import WriteIntent
from bems.schedules import effective_site
from bems.site import Site
from bems.storage import Store
from bems.state import DECISION_LOOKBACK_S, DEMAND_LEVEL, LEARNED_RATES
from bems.strategies import commissioning
from bems.strategies.plan import Learned, Override, ZoneDecision, demand_level, intents_of, plan

if TYPE_CHECKING:
    from bems.predictive.mpc import Plan

# readings older than this are not used to control (the runtime polls every minute); a runtime
# that polls less often in its own time (a demo at 60x) stores a longer one, for everyone
LOOKBACK_S = 15 * 60


@dataclass(frozen=True)
class Decision:
    at: dt.datetime
    level: int
    zones: list[ZoneDecision]
    strategy: str = "rules"  # what decided: "rules", "predictive" or "commissioning"
    note: str = ""  # predictive: why (some) zones were left to the rules ("" when none)
    plan: "Plan | None" = None  # predictive: the day's plan the intents come from
    fresh_plan: bool = False  # solved for this decision (else reused, under 15 minutes old)

    @property
    def intents(self) -> list[WriteIntent]:
        return intents_of(self.zones)


def load_learned(store: Store) -> Learned:
    d = store.get(LEARNED_RATES)
    return Learned({k: [tuple(x) for x in v] for k, v in d.get("cool", {}).items()},
                   {k: [tuple(x) for x in v] for k, v in d.get("warm", {}).items()})


def save_learned(store: Store, learned: Learned) -> None:
    store.put(LEARNED_RATES, {"cool": learned.cool, "warm": learned.warm})


def current_values(store: Store, now: dt.datetime) -> dict[str, float | None]:
    """The newest good reading of each point recent enough to control on: within LOOKBACK_S
    before `now`, or three poll cycles of the runtime if that is longer."""
    lookback = max(LOOKBACK_S, store.get(DECISION_LOOKBACK_S))
    latest = store.latest(now=now, lookback_s=lookback)
    return {k: v for k, (_, v, q) in latest.items() if q == "good"}


def decide(site: Site, store: Store, now: dt.datetime, params: dict | None = None) -> Decision:
    """What the strategies want at `now` (aware), without writing anything. `params`: checked
    strategy parameters to try over the stored ones (the UI's "what changes if I save")."""
    eff = effective_site(site, store)
    if params:
        import dataclasses

        eff = dataclasses.replace(eff, strategies=dataclasses.replace(eff.strategies, **params))
    values = current_values(store, now)
    overrides = [Override(o["point"], o["value"], o["expires_at"], o["created_by"], o["reason"])
                 for o in store.overrides(active_at=now)]
    main = eff.main_meter()
    site_kw = values.get(main.power) if main and main.power else None
    next_kw = None
    if main is not None:
        fc = store.latest_forecasts(main.id).get(main.id, [])
        ahead = [f["yhat"] for f in fc if now <= f["ts"] < now + dt.timedelta(hours=1)]
        next_kw = ahead[0] if ahead else None
    level = demand_level(eff.strategies, site_kw, next_kw, store.get(DEMAND_LEVEL))
    local = now.astimezone(eff.tz).replace(tzinfo=None)
    trial = commissioning.current(store)
    if trial is not None and not trial.active(local.date()):
        trial = None
    # commissioning decides whatever the mode: its tests are the rule set's, varied
    if trial is None and eff.strategies.mode == "predictive":
        return _predictive(eff, store, now, local, values, overrides, level)
    zones = plan(eff, SiteCalendar(eff), values, local, load_learned(store), level, overrides,
                 now_aware=now, commissioning=trial)
    return Decision(now, level, zones, "commissioning" if trial is not None else "rules")


def _predictive(site: Site, store: Store, now: dt.datetime, local: dt.datetime,
                values: dict, overrides: list[Override], level: int) -> Decision:
    """The predictive strategy over the store: its zone models (refitted nightly), the
    outdoor forecast (the provider's, cached, else persistence), the zones' surface
    temperatures from the last two days; the day's plan is solved at most every 15 minutes and
    reused in between."""
    from bems.predictive import store as pstore
    from bems.predictive import strategy as predictive
    from bems.predictive.model import history_from_store
    from bems.predictive.weather import outdoor_forecast

    calendar = SiteCalendar(site)
    learned = load_learned(store)
    model = pstore.load_model(store)
    cached = pstore.latest_plan(store)
    if model is not None and cached is not None and cached.comfort_weight == \
            site.strategies.comfort_weight:
        k = pstore.step_of(cached, local)
        if k is not None:
            out = predictive.follow(site, calendar, values, local, now, learned, level,
                                    overrides, cached, k, pstore.latest_note(store))
            return Decision(now, level, out.decisions, "predictive", out.note, cached)
    mass, forecast, source, spent = {}, None, "", None
    steps = predictive.steps_today(site, calendar, local)
    if model is not None and steps > 0:  # nights and weekends: nothing to gather
        h = history_from_store(site, store, now - dt.timedelta(days=2), now)
        mass = predictive.mass_now(site, model, h)
        if site.strategies.predictive_comfort == "budget":
            spent = predictive.spent_today(site, model, h, local.date())
        t_out = next((values.get(p.id) for p in site.points
                      if p.kind == "outdoor_temperature"), None)
        forecast, source = outdoor_forecast(site, store, now, steps, t_out)
    out = predictive.decide(site, calendar, values, local, now, learned, level, overrides,
                            model, mass, forecast, source, spent)
    return Decision(now, level, out.decisions, "predictive", out.note, out.plan,
                    fresh_plan=out.plan is not None)


def commit(store: Store, decision: Decision) -> None:
    """Keep the demand level decided (the next decision's hysteresis starts from it), and a
    predictive plan solved for it (the next 15 minutes reuse it; the UI shows it against what
    happened)."""
    store.put(DEMAND_LEVEL, decision.level)
    if decision.plan is not None and decision.fresh_plan:
        from bems.predictive import store as pstore

        pstore.save_plan(store, decision.plan, decision.note)
