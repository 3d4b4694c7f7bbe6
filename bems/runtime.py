"""The composition root: one process owns the field bus, the store and the scheduler.

Jobs are short calls into the services: poll the devices, decide and write (the one decision
path, `bems.decision`, through the one writer), flush COV values, write the heartbeat, refresh
rollups, purge raw readings past the retention, push controller schedules, refit forecasts,
make last month's reports. At start the writer recovers what a previous run left held; at a
clean stop it releases everything it holds.

The field bus is the site's protocols (`connectors.buses.field_bus`: BACnet/IP, Modbus TCP)
unless one is given: tests give `connectors.memory.MemoryBus`.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from pathlib import Path
from typing import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bems import decision as decision_path
from bems.control import Writer
from bems.fieldbus import FieldBus
from bems.intents import WriteIntent
from bems.plausible import Screen
from bems.reasons import reason
from bems.schedules import effective_site, for_controller
from bems.site import Site
from bems import state
from bems.storage import Store
from bems.strategies.plan import learn

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


class Runtime:
    def __init__(self, site: Site, db: Path, bacnet_port: int | None = None,
                 poll_interval_s: float = 60.0, heartbeat_s: float = 60.0,
                 strategy_interval_s: float = 60.0, dry_run: bool = False,
                 clock: Callable[[], dt.datetime] | None = None,
                 bus: FieldBus | None = None, interface: str | None = None):
        if bus is None:
            from connectors.buses import field_bus

            bus = field_bus(site, bacnet_port=bacnet_port, interface=interface)
        self.site = site
        self.db = db
        self.store = Store(db, site.timezone)
        self.bus = bus
        # the time BEMS lives in: the wall clock, or a simulation's (tests, demos); readings
        # are stored at this time, and strategies decide at it
        self.clock = clock or (lambda: dt.datetime.now(UTC))
        # the store's one connection is shared by the runtime's workers: one uses it at a time
        # (reentrant: a job that holds it may call the writer, which takes it too)
        self._lock = threading.RLock()
        self.writer = Writer(site, bus, self.store, clock=self.clock, store_lock=self._lock)
        self.poll_interval_s, self.heartbeat_s = poll_interval_s, heartbeat_s
        self.strategy_interval_s, self.dry_run = strategy_interval_s, dry_run
        self.learned = decision_path.load_learned(self.store)
        self.level = 0
        self.last_values: dict[str, float | None] = {}
        self.last_decisions: list = []
        self.last_decision: decision_path.Decision | None = None
        # one worker: jobs never run at the same time, so they can share the store connection
        # the fault rules read two weeks of rollups (a second or two): they run on a worker of
        # their own, reading through a connection of their own, so polls never wait for them
        # the outdoor forecast has a worker of its own too: a provider that answers slowly
        # holds nothing else up (its request is bounded as a whole, connectors.http)
        self.scheduler = BackgroundScheduler(
            timezone=site.timezone, executors={"default": ThreadPoolExecutor(1),
                                               "faults": ThreadPoolExecutor(1),
                                               "weather": ThreadPoolExecutor(1),
                                               "backup": ThreadPoolExecutor(1),
                                               "notify": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
        # every job that commands devices (strategies, heartbeat, schedules, time sync) holds
        # this while it runs; `stop` takes it to release everything, and no such job starts
        # again once `stopping` is set
        self._writing = threading.Lock()
        self.stopping = threading.Event()
        self.last_poll = None
        self._last_poll_at: dt.datetime | None = None
        self._lookback = 0
        self._cov_rows: list[tuple] = []
        self._note = ""
        self._zone_fit_asked = False
        self.publisher = None  # reporting to the city portfolio ([portfolio] in the site file)
        self.run_lock = None
        self.screen = Screen(site)
        self._site_version = None
        if site.source is not None:
            from bems.sitefile import file_version

            self._site_version = file_version(site.source)

    def _store_rows(self, rows: list[tuple]) -> None:
        """Readings into the store, an implausible value as a bad reading (bems.plausible)."""
        with self._lock:
            self.store.insert_screened(rows, self.screen)

    def _store_polled(self, rows: list[tuple]) -> None:
        """A poll cycle's readings, stamped at BEMS's time (a simulation's, in demos)."""
        now = self.clock().replace(microsecond=0)
        self._store_rows([(r[0], now, *r[2:]) for r in rows])

    def _on_cov(self, point: str, value: object, when: dt.datetime) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # the store keeps a non-finite value as a bad reading without a value
            self._cov_rows.append((point, self.clock(), value, "good"))

    def flush_cov(self) -> None:
        rows, self._cov_rows = self._cov_rows, []
        if rows:
            self._store_rows(rows)

    def start(self) -> None:
        from bems.storage.backup import RunLock

        if str(self.store.path) != ":memory:":  # one runtime per store (and no restore under it)
            self.run_lock = RunLock(self.store.path).acquire()
        self.bus.start()
        for r in self.writer.recover():
            log.info("recovery: %s %s", r.point, r.outcome)
        self.backfill()
        self.push_schedules()
        self.poll()
        self.bus.subscribe(self._on_cov)
        self.heartbeat()
        self._told_outage()
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
        self.scheduler.add_job(self.purge, "cron", hour=0, minute=45, id="purge")
        if self.site.storage.backup_keep > 0:
            self.scheduler.add_job(self.backup, "cron", hour=1, minute=40, id="backup",
                                   executor="backup")
        if self.site.source is not None:
            self.scheduler.add_job(self.reload_site, "interval", seconds=30, id="site")
        self.scheduler.add_job(self.alarms, "interval", minutes=1, id="alarms",
                               next_run_time=now + dt.timedelta(seconds=15))
        if self.site.notify is not None:
            self.scheduler.add_job(self.notify, "interval", seconds=30, id="notify",
                                   executor="notify", next_run_time=now + dt.timedelta(seconds=20))
        # fault rules every 15 minutes of BEMS's time (a demo's clock runs faster)
        self.scheduler.add_job(self.detect_faults, "interval", id="faults", executor="faults",
                               seconds=max(10.0, 15 * self.strategy_interval_s),
                               next_run_time=now + dt.timedelta(seconds=20))
        self.scheduler.add_job(self.check_clocks, "interval", hours=1, id="clocks",
                               next_run_time=now + dt.timedelta(seconds=30))
        self.scheduler.add_job(self.push_schedules, "cron", hour=0, minute=5, id="schedules")
        self.scheduler.add_job(self.refit_forecasts, "cron", hour=0, minute=30, id="forecasts")
        # the predictive strategy's zone models, nightly (and now, for a site without them
        # that runs the predictive strategy); the outdoor forecast as often as the site says
        self.scheduler.add_job(self.refit_zone_models, "cron", hour=0, minute=15, id="zones",
                               executor="faults")
        if self.site.strategies.mode == "predictive" and \
                self.store.get(state.PREDICTIVE_MODEL) is None:
            self.scheduler.add_job(self.refit_zone_models, "date", id="first-zones",
                                   executor="faults", run_date=now + dt.timedelta(seconds=5))
        if self.site.weather is not None:
            self.scheduler.add_job(self.refresh_weather, "interval", id="weather",
                                   executor="weather", minutes=self.site.weather.refresh_min,
                                   next_run_time=now + dt.timedelta(seconds=3))
        self.scheduler.add_job(self.monthly_reports, "cron", day=1, hour=1, minute=0,
                               id="reports")
        if self.site.portfolio is not None:
            from connectors.mqtt.publisher import Publisher

            self.publisher = Publisher(self.site.portfolio, self.db, self.site.timezone,
                                       clock=self.clock)
            self.publisher.start()
            self.scheduler.add_job(self.report_to_city, "interval", id="portfolio",
                                   executor="faults", seconds=self.site.portfolio.interval_s,
                                   next_run_time=now + dt.timedelta(seconds=2))
        if not self.store.latest_forecasts():  # a new site: the first forecasts now, not tonight
            self.scheduler.add_job(self.refit_forecasts, "date", id="first-forecasts",
                                   run_date=now + dt.timedelta(seconds=10))
        self.scheduler.start()

    def report_to_city(self) -> int:
        """Put what is new in the outbox (its own connection: the faults worker's) and wake
        the publisher; prune what the city confirmed `keep_sent_days` ago."""
        from bems.portfolio.collect import Collector

        cfg = self.site.portfolio
        now = self.clock()
        with Store(self.db, self.site.timezone) as store:
            n = Collector(self.site, store, cfg.readings, cfg.interval_s).collect(now)
            _, dropped = store.prune_outbox(now - dt.timedelta(days=cfg.keep_sent_days),
                                            cfg.max_unsent)
        if dropped:
            log.warning("portfolio: the outbox was full; %d oldest unsent messages dropped",
                        dropped)
        if n and self.publisher is not None:
            self.publisher.wake()
        return n

    def backfill(self, max_days: float = 7.0) -> None:
        """Fill the gap since the last stored reading from the devices' trend logs."""
        last = self.store.time_span()[1]
        now = self.clock()
        since = last or now
        since = max(since, now - dt.timedelta(days=max_days))
        try:
            counts = self.bus.backfill(since, self._store_rows)
            log.info("backfill: %d readings since %s", sum(counts.values()), since)
        except Exception:
            log.exception("backfill failed")

    def push_schedules(self) -> None:
        """Controllers that schedule locally get the season's week and the holidays (as edited),
        through the one writer: each push is in the ledger. A controller that is away gets it
        tomorrow."""
        with self._writing:
            if not self.stopping.is_set():
                self._push_schedules()

    def _push_schedules(self) -> None:
        devices = [d for d in self.site.devices if d.schedule and d.schedule_object]
        if not devices:
            return
        with self._lock:
            site = effective_site(self.site, self.store)
        today = self.clock().astimezone(self.site.tz).date()
        for dev in devices:
            try:
                self.writer.push_schedule(dev, for_controller(site, dev, today))
            except Exception:
                log.exception("schedule push to %s failed", dev.id)

    def refit_forecasts(self) -> None:
        """Nightly: each meter's model chosen by backtest, refitted, 48 h written ahead."""
        from models.service import describe, refit_all

        self.store_maintenance()
        for r in refit_all(self.site, self.db, self.clock()):
            log.info("forecast %s", describe(r))

    def refit_zone_models(self) -> None:
        """Nightly: every zone's model refitted on the last 14 days (a second connection reads;
        only the result is written under the runtime's lock)."""
        from bems.predictive import store as pstore
        from bems.predictive.model import fit, history_from_store

        try:
            now = self.clock()
            with Store(self.db, self.site.timezone, migrate=False) as reader:
                h = history_from_store(self.site, reader,
                                       now - dt.timedelta(days=pstore.HISTORY_DAYS), now)
                previous = pstore.load_model(reader)
            model = fit(self.site, h, now, previous)
            with self._lock:
                self.store.put(state.PREDICTIVE_MODEL, model.to_json())
            bad = [f"{z} ({m.why})" for z, m in model.zones.items() if not m.fit]
            log.info("zone models refitted: %d fit%s", len(model.usable()),
                     f"; unfit: {', '.join(bad)}" if bad else "")
        except Exception:
            log.exception("zone model refit failed")

    def refresh_weather(self) -> None:
        """The outdoor forecast from the site's provider, cached; on an error the cache keeps
        what it had (persistence takes over when it is stale) and the error is logged."""
        from bems.predictive.weather import WeatherError, cache
        from connectors.weather import fetch

        try:
            points = fetch(self.site.weather)
            with self._lock:
                cache(self.store, self.site.weather, points, self.clock())
        except WeatherError as exc:
            log.warning("weather forecast not refreshed: %s", exc)
        except Exception:
            log.exception("weather forecast refresh failed")

    @property
    def reports_dir(self) -> Path:
        return self.db.parent / "reports"

    def monthly_reports(self, month: str | None = None) -> list[Path]:
        """On the 1st: last month's report in Vietnamese and English (PDF), XLSX and CSV."""
        from bems.reports.monthly import build_monthly
        from models.savings import option_c
        from bems.reports.render import render

        if month is None:
            first = self.clock().astimezone(self.site.tz).date().replace(day=1)
            prev = first - dt.timedelta(days=1)
            month = f"{prev.year:04d}-{prev.month:02d}"
        try:
            self.store_maintenance()
            r = build_monthly(self.site, self.store, month, option_c)
            paths = [render(r, f, self.reports_dir, lang)
                     for f, lang in (("pdf", "vi"), ("pdf", "en"), ("xlsx", "vi"), ("csv", "en"))]
            with self._lock:  # the runtime's one connection: one writer at a time
                self.store.audit("bems", "report.monthly", {"month": month,
                                                            "files": [p.name for p in paths]})
            return paths
        except Exception:
            log.exception("monthly report %s failed", month)
            return []

    def poll(self) -> None:
        try:
            before = dict(self.last_values)
            now = self.clock()
            if self._last_poll_at is not None:
                # three poll cycles in BEMS's time (longer than a minute's in a fast demo)
                lookback = int(3 * (now - self._last_poll_at).total_seconds())
                if lookback > decision_path.LOOKBACK_S and lookback != self._lookback:
                    self._lookback = lookback
                    with self._lock:
                        self.store.put(state.DECISION_LOOKBACK_S, lookback)
            self._last_poll_at = now
            self.last_poll = self.bus.poll(self._store_polled)
            self.last_values = {k: v for k, (v, q) in self.last_poll.values.items()
                                if q == "good" and isinstance(v, float) and math.isfinite(v)
                                and self.screen.plausible(k, v)}
            if before:
                hours = self.poll_interval_s / 3600
                learn(self.site, self.learned, before, self.last_values, hours,
                      self.clock().astimezone(self.site.tz).date())
                with self._lock:
                    decision_path.save_learned(self.store, self.learned)
            self._alive("poll")
        except Exception:  # a failed cycle is logged; the next one runs as planned
            log.exception("poll cycle failed")

    def _alive(self, job: str) -> None:
        """A job ran through (for /healthz, read by the web process from the store)."""
        with self._lock:
            jobs = self.store.get(state.JOBS_ALIVE)
            jobs[job] = int(self.clock().timestamp())
            self.store.put(state.JOBS_ALIVE, jobs)

    def decide(self, now: dt.datetime | None = None) -> decision_path.Decision:
        """What the strategies want now (no writes): the one decision path, over the store."""
        with self._lock:
            return decision_path.decide(self.site, self.store, now or self.clock())

    def run_strategies(self) -> None:
        """Every minute: the strategies' intents through the one writer (unless dry-run), and
        whatever BEMS holds that no strategy or override wants any more (a strategy switched
        off, an override ended) released in the same run."""
        with self._writing:
            if not self.stopping.is_set():
                self._run_strategies()

    def _run_strategies(self) -> None:
        try:
            d = self.decide()
            self.last_decision = d
            self.level, self.last_decisions = d.level, d.zones
            with self._lock:
                decision_path.commit(self.store, d)
            if d.strategy == "predictive" and d.note != self._note:
                # said once when it changes: why the rule set decides for some or all zones
                level = logging.INFO if not d.note or d.note == "nobody_today" \
                    else logging.WARNING
                log.log(level, "predictive strategy: %s", d.note or "every zone follows the plan")
            self._note = d.note
            if d.strategy == "predictive" and d.note == "no_model" and \
                    not self._zone_fit_asked:
                # switched to the predictive strategy before any night's refit: fit now
                self._zone_fit_asked = True
                self.scheduler.add_job(self.refit_zone_models, "date", id="asked-zones",
                                       executor="faults", replace_existing=True)
            self._alive("strategies")
            if self.dry_run:
                return
            for intent in d.intents:
                r = self.writer.apply(intent)
                if not r.ok:
                    log.warning("%s: %s %s", intent.point, r.outcome, r.error)
            wanted = {i.point for i in d.intents} | {self.site.control.heartbeat_point}
            for pid in [p for p in self.writer.held if p not in wanted]:
                self.writer.release(pid, "strategy", reason("unwanted"))
            self._alive("writer")
        except Exception:  # logged; the next run tries again
            log.exception("strategy run failed")

    def heartbeat(self) -> None:
        hb = self.site.control.heartbeat_point
        with self._writing:
            if hb and not self.stopping.is_set():
                # minutes, cycling below 10,000 so a 32-bit BACnet Real holds it exactly
                minutes = int(self.clock().timestamp()) // 60
                self.writer.apply(WriteIntent(hb, float(minutes % 10000),
                                              reason("alive"), source="heartbeat"))

    def store_maintenance(self) -> None:
        with self._lock:
            self.store.refresh_rollups()

    def alarms(self) -> list[tuple[str, dict]]:
        """Every minute: the alarm log follows the active alarms (and the messages to people
        they cause are queued); acknowledgements of alarms that have cleared are dropped, so
        the next occurrence must be acknowledged again."""
        from bems.notify import evaluate
        from bems.status import prune_acks

        try:
            with self._lock:
                now = self.clock()
                events = evaluate(self.site, self.store, now)
                prune_acks(self.site, self.store, now,
                           {a["key"] for a in self.store.open_alarms()})
        except Exception:
            log.exception("alarm evaluation failed")
            return []
        for event, e in events:
            log.info("alarm %s: %s %s (%s)", event, e["kind"], e["target"], e["severity"])
        return events

    def reload_site(self) -> bool:
        """Every 30 s: when the site file changed (settings saved from the UI, or an engineer),
        its new settings take effect without a restart (zones, setpoints and limits, meters,
        tariffs, recipients, strategy parameters). A file that does not load is logged and the
        running settings stay. Devices and points are the field bus's: they need a restart."""
        from bems.config import load_site
        from bems.errors import BemsError
        from bems.sitefile import file_version

        v = file_version(self.site.source)
        if v is None or v == self._site_version:
            return False
        try:
            site = load_site(self.site.source)
        except BemsError as err:
            log.error("the site file changed but does not load; still running the previous "
                      "settings: %s", err)
            self._site_version = v
            return False
        if {(d.id, d.address, d.instance) for d in site.devices} != \
                {(d.id, d.address, d.instance) for d in self.site.devices} or \
                {p.id for p in site.points} != {p.id for p in self.site.points}:
            log.warning("the site file's devices or points changed: restart bems run for them "
                        "(its other settings are taken now)")
        with self._writing, self._lock:
            self.site = site
            self.writer.site = site
            self.screen = Screen(site)
        self._site_version = v
        log.info("site file reloaded: %s", self.site.source)
        return True

    def _told_outage(self) -> None:
        from bems.notify import at_start

        try:
            with self._lock:
                for _, e in at_start(self.site, self.store, self.clock()):
                    log.warning("BEMS was not running: %s", e["target"])
        except Exception:
            log.exception("alarm evaluation failed")

    def notify(self) -> dict[str, int]:
        """Every 30 s, on a worker of its own (a mail relay may be slow): what is due goes to
        people, by e-mail or webhook; what cannot go now is retried with back-off."""
        from bems.notify import deliver

        try:
            with Store(self.db, self.site.timezone, migrate=False) as store:
                return deliver(self.site, store, self.clock())
        except Exception:
            log.exception("notification delivery failed")
            return {}

    def detect_faults(self) -> int:
        """The fault rules over the last 30 hours (with the weeks before as baselines); what
        they find is recorded (an occurrence seen again is extended, not repeated)."""
        from bems.faults.engine import detect

        try:
            now = self.clock()
            with Store(self.db, self.site.timezone, migrate=False) as reader:
                found = detect(self.site, reader, now - dt.timedelta(hours=30), now)
            with self._lock:  # recording is quick; it shares the runtime's connection
                for f in found:
                    self.store.record_fault(f.as_dict(), now)
            return len(found)
        except Exception:
            log.exception("fault detection failed")
            return 0

    def check_clocks(self) -> dict[str, float]:
        """Hourly: how far each controller's own clock is from BEMS's (local schedules run on
        it). Kept in the store; more than five minutes is an alarm. With `[bacnet] time_sync`,
        a clock more than a minute off is set (TimeSynchronization), in the ledger, and read
        again."""
        drift: dict[str, float] = {}
        for dev in self.site.devices:
            if dev.protocol != "bacnet":  # a Modbus meter has no clock BEMS can read
                continue
            try:
                drift[dev.id] = self._drift(dev)
                if self.site.bacnet.time_sync and abs(drift[dev.id]) > 60:
                    drift[dev.id] = self._sync_clock(dev, drift[dev.id])
            except Exception as err:  # a device without a clock, or away: not an alarm here
                log.info("clock of %s not read: %s", dev.id, err)
        with self._lock:
            self.store.put(state.CONTROLLER_CLOCKS, {"at": self.clock().isoformat(),
                                                     "drift_s": drift})
        return drift

    def _drift(self, dev) -> float:
        now_local = self.clock().astimezone(self.site.tz).replace(tzinfo=None)
        return round((self.bus.read_clock(dev) - now_local).total_seconds())

    def _sync_clock(self, dev, before: float) -> float:
        """Through the one writer: set, read back, in the ledger."""
        with self._lock:
            r = self.writer.sync_clock(dev, self.clock().astimezone(self.site.tz).replace(
                tzinfo=None), before)
        return r.value if r.value is not None else before

    def purge(self) -> int:
        """Nightly: raw readings past the site's retention are deleted (rollups are kept)."""
        before = self.clock() - dt.timedelta(days=self.site.storage.retention_days)
        with self._lock:
            n = self.store.purge_readings(before)
            self.store.purge_alarm_log(before)
        log.info("purge: %d raw readings before %s", n, before)
        return n

    def backup(self) -> Path:
        """Nightly: a checked copy of the store in [storage] backup_dir, the newest N kept (on a
        worker of its own: polls and decisions go on meanwhile)."""
        from bems.storage.backup import backup

        folder = Path(self.site.storage.backup_dir).expanduser()
        if not folder.is_absolute():
            folder = self.store.path.resolve().parent / folder
        try:
            path = backup(self.store.path, folder, self.site.storage.backup_keep)
        except Exception as err:  # an alarm (and a message) until a backup works again
            with self._lock:
                self.store.put(state.BACKUP_FAILED, {"error": str(err)[:300],
                                                     "at": int(self.clock().timestamp())})
            log.exception("backup failed")
            raise
        with self._lock:
            self.store.put(state.BACKUP_FAILED, {})
        log.info("backup: %s", path)
        return path

    def stop(self, others_s: float = 30.0) -> None:
        """Clean shutdown: release every write BEMS holds first, whatever else is still
        running (a slow provider, a fault pass), then stop the rest and close everything.

        No job starts any more; a job that commands devices and is running is waited for (it
        is bounded by the devices' timeouts); jobs on the other workers (faults, weather, the
        city) are given `others_s` seconds after the release."""
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        try:
            with self._writing:
                self.bus.unsubscribe()
                self.flush_cov()
                for r in self.writer.release_all("shutdown", reason("stopped")):
                    log.info("release at shutdown: %s %s", r.point, r.outcome)
        finally:
            from connectors.http.client import abort_all

            abort_all()  # a provider's answer under way is not waited for
            self._wait_for_workers(others_s)
            if self.publisher is not None:
                self.publisher.stop()  # what is not acknowledged stays in the outbox
            self.bus.stop()
            with self._lock:
                self.store.close()
            if self.run_lock is not None:
                self.run_lock.release()

    def _wait_for_workers(self, seconds: float) -> None:
        """The other workers' running jobs, given `seconds` to end (their threads are not
        daemons: a hung one would hold the process at exit, so each is bounded by design)."""
        done = threading.Event()

        def join() -> None:
            for ex in self.scheduler._executors.values():
                ex.shutdown(wait=True)
            done.set()

        threading.Thread(target=join, name="stop-workers", daemon=True).start()
        if not done.wait(seconds):
            log.warning("stop: a job was still running after %g s (writes already released)",
                        seconds)
