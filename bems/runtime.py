"""The composition root: one process owns the BACnet gateway, the store and the scheduler.

Jobs are short calls into the services: poll the devices, write the heartbeat, refresh rollups,
purge old raw readings. At start the writer recovers what a previous run left held; at a clean
stop it releases everything it holds.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bems.control import WriteIntent, Writer
from bems.site import Site
from bems.storage import Store

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


def _load_learned(store: Store):
    from bems.strategies.plan import Learned

    d = store.get_meta("learned_rates", {}) or {}
    return Learned({k: [tuple(x) for x in v] for k, v in d.get("cool", {}).items()},
                   {k: [tuple(x) for x in v] for k, v in d.get("warm", {}).items()})


def _save_learned(store: Store, learned) -> None:
    store.set_meta("learned_rates", {"cool": learned.cool, "warm": learned.warm})


class Runtime:
    def __init__(self, site: Site, db: Path, bacnet_port: int = 47808,
                 poll_interval_s: float = 60.0, heartbeat_s: float = 60.0,
                 strategy_interval_s: float = 60.0, dry_run: bool = False,
                 clock: Callable[[], dt.datetime] | None = None):
        from connectors.bacnet.gateway import BacnetGateway
        from connectors.bacnet.poller import CovSubscriptions, Poller

        self.site = site
        self.db = db
        self.store = Store(db, site.timezone)
        self.gateway = BacnetGateway(port=bacnet_port)
        self.writer = Writer(site, self.gateway, self.store)
        self.poller = Poller(site, self.gateway, sink=self._store_rows)
        self.cov = CovSubscriptions(site, self.gateway, self._on_cov)
        self.poll_interval_s, self.heartbeat_s = poll_interval_s, heartbeat_s
        self.strategy_interval_s, self.dry_run = strategy_interval_s, dry_run
        # the time strategies decide at: the wall clock, or a simulation's (tests, demos)
        self.clock = clock or (lambda: dt.datetime.now(UTC))
        self.learned = _load_learned(self.store)
        self.level = 0
        self.last_values: dict[str, float | None] = {}
        self.last_decisions: list = []
        # one worker: jobs never run at the same time, so they can share the store connection
        self.scheduler = BackgroundScheduler(
            timezone=site.timezone, executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
        self.last_poll = None
        self._lock = threading.Lock()  # one thread writes the store at a time
        self._cov_rows: list[tuple] = []

    def _store_rows(self, rows: list[tuple]) -> None:
        with self._lock:
            self.store.insert_readings(rows)

    def _on_cov(self, point: str, value: object, when: dt.datetime) -> None:
        if isinstance(value, (int, float)):
            self._cov_rows.append((point, when, value, "good"))

    def flush_cov(self) -> None:
        rows, self._cov_rows = self._cov_rows, []
        if rows:
            self._store_rows(rows)

    def start(self) -> None:
        self.gateway.start()
        for r in self.writer.recover():
            log.info("recovery: %s %s", r.point, r.outcome)
        self.backfill()
        self.push_schedules()
        self.poll()
        self.cov.start()
        self.heartbeat()
        now = dt.datetime.now(UTC)
        self.scheduler.add_job(self.poll, "interval", seconds=self.poll_interval_s, id="poll",
                               next_run_time=now + dt.timedelta(seconds=self.poll_interval_s))
        self.scheduler.add_job(self.flush_cov, "interval", seconds=5, id="cov")
        self.scheduler.add_job(self.run_strategies, "interval", seconds=self.strategy_interval_s,
                               id="strategies", next_run_time=now)
        if self.site.control.heartbeat_point:
            self.scheduler.add_job(self.heartbeat, "interval", seconds=self.heartbeat_s,
                                   id="heartbeat")
        self.scheduler.add_job(self.store_maintenance, "interval", minutes=5, id="rollups")
        self.scheduler.add_job(self.push_schedules, "cron", hour=0, minute=5, id="schedules")
        self.scheduler.add_job(self.refit_forecasts, "cron", hour=0, minute=30, id="forecasts")
        self.scheduler.add_job(self.monthly_reports, "cron", day=1, hour=1, minute=0,
                               id="reports")
        if not self.store.latest_forecasts():  # a new site: the first forecasts now, not tonight
            self.scheduler.add_job(self.refit_forecasts, "date", id="first-forecasts",
                                   run_date=now + dt.timedelta(seconds=10))
        self.scheduler.start()

    def backfill(self, max_days: float = 7.0) -> None:
        """Fill the gap since the last stored reading from the devices' trend logs."""
        from connectors.bacnet.trends import backfill

        if not any(p.trend_log for p in self.site.points):
            return
        last = self.store.stats()["last reading"]
        now = dt.datetime.now(UTC)
        since = dt.datetime.fromisoformat(last) if last != "-" else now
        since = max(since, now - dt.timedelta(days=max_days))
        try:
            counts = backfill(self.site, self.gateway, self._store_rows, since)
            log.info("backfill: %d readings since %s", sum(counts.values()), since)
        except Exception:
            log.exception("backfill failed")

    def push_schedules(self) -> None:
        """Controllers that schedule locally get the season's week and the holidays."""
        from connectors.bacnet import schedules

        today = dt.datetime.now(self.site.tz).date()
        for dev in self.site.devices:
            if dev.schedule and dev.schedule_object:
                try:
                    schedules.push(self.gateway, self.site, dev, today)
                except Exception as err:  # a controller that is away gets it tomorrow
                    log.warning("schedule push to %s failed: %s", dev.id, err)

    def refit_forecasts(self) -> None:
        """Nightly: each meter's model chosen by backtest, refitted, 48 h written ahead."""
        from models.service import describe, refit_all

        self.store_maintenance()
        for r in refit_all(self.site, self.db, dt.datetime.now(UTC)):
            log.info("forecast %s", describe(r))

    @property
    def reports_dir(self) -> Path:
        return self.db.parent / "reports"

    def monthly_reports(self, month: str | None = None) -> list[Path]:
        """On the 1st: last month's report in Vietnamese and English (PDF), XLSX and CSV."""
        from bems.reports.monthly import build_monthly
        from bems.reports.render import render

        if month is None:
            first = self.clock().astimezone(self.site.tz).date().replace(day=1)
            prev = first - dt.timedelta(days=1)
            month = f"{prev.year:04d}-{prev.month:02d}"
        try:
            self.store_maintenance()
            r = build_monthly(self.site, self.store, month)
            paths = [render(r, f, self.reports_dir, lang)
                     for f, lang in (("pdf", "vi"), ("pdf", "en"), ("xlsx", "vi"), ("csv", "en"))]
            self.store.audit("bems", "report.monthly", {"month": month,
                                                        "files": [p.name for p in paths]})
            return paths
        except Exception:
            log.exception("monthly report %s failed", month)
            return []

    def poll(self) -> None:
        try:
            before = dict(self.last_values)
            self.last_poll = self.poller.poll()
            self.last_values = {k: v for k, (v, q) in self.last_poll.values.items()
                                if q == "good"}
            if before:
                from bems.strategies.plan import learn

                hours = self.poll_interval_s / 3600
                learn(self.site, self.learned, before, self.last_values, hours,
                      self.clock().astimezone(self.site.tz).date())
        except Exception:  # a failed cycle is logged; the next one runs as planned
            log.exception("poll cycle failed")

    def decide(self, now: dt.datetime | None = None) -> list:
        """What the strategies want now (no writes): the site as edited, overrides, demand."""
        from bems.calendar import SiteCalendar
        from bems.schedules import effective_site
        from bems.strategies.plan import Override, demand_level, plan

        now = now or self.clock()
        with self._lock:
            site = effective_site(self.site, self.store)
            overrides = [Override(o["point"], o["value"], o["expires_at"], o["created_by"],
                                  o["reason"]) for o in self.store.overrides(active_at=now)]
            fc = self.store.latest_forecasts()
        main = next((m for m in site.meters if m.measures == "main"), None)
        site_kw = self.last_values.get(main.power) if main and main.power else None
        next_kw = None
        if main and main.id in fc:
            ahead = [f["yhat"] for f in fc[main.id] if now <= f["ts"] < now + dt.timedelta(hours=1)]
            next_kw = ahead[0] if ahead else None
        self.level = demand_level(site.strategies, site_kw, next_kw, self.level)
        local = now.astimezone(site.tz).replace(tzinfo=None)
        return plan(site, SiteCalendar(site), self.last_values, local, self.learned, self.level,
                    overrides, now_aware=now)

    def run_strategies(self) -> None:
        """Every minute: the strategies' intents through the one writer (unless dry-run)."""
        from bems.strategies.plan import intents_of

        try:
            self.last_decisions = self.decide()
            if self.dry_run:
                return
            for intent in intents_of(self.last_decisions):
                r = self.writer.apply(intent)
                if not r.ok:
                    log.warning("%s: %s %s", intent.point, r.outcome, r.error)
            _save_learned(self.store, self.learned)
        except Exception:  # logged; the next run tries again
            log.exception("strategy run failed")

    def heartbeat(self) -> None:
        hb = self.site.control.heartbeat_point
        if hb:
            # minutes, cycling below 10,000 so a 32-bit BACnet Real holds it exactly
            self.writer.apply(WriteIntent(hb, float(int(time.time()) // 60 % 10000),
                                          "BEMS is alive", source="heartbeat"))

    def store_maintenance(self) -> None:
        with self._lock:
            self.store.refresh_rollups()

    def stop(self) -> None:
        """Clean shutdown: stop the jobs, release every write BEMS holds, close everything."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        try:
            self.cov.stop()
            self.flush_cov()
            for r in self.writer.release_all("shutdown", "BEMS stopped"):
                log.info("release at shutdown: %s %s", r.point, r.outcome)
        finally:
            self.gateway.stop()
            self.store.close()
