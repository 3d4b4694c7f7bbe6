"""A store of plausible readings for every point of a site, made in milliseconds without
EnergyPlus: for fast tests of what reads the store (UI, decisions). Not physics: zone
temperatures follow a daily wave, AC and lights follow office hours, meters add up.

Each store is made once per test run (`CACHE`, set by conftest: the run's own folder, one for
all xdist workers) and copied to whoever asks for the same days again."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import math
import os
import shutil
from pathlib import Path
from typing import Callable

from bems.site import Site
from bems.storage import Store


CACHE: Path | None = None


def synthetic_db(path: Path, site: Site, end_local: dt.datetime, days: int,
                 step_s: int = 900) -> Path:
    """A new store at `path` with `days` of readings up to `end_local` (the site's time)."""
    if CACHE is None:
        return _make(path, site, end_local, days, step_s)
    what = repr((end_local.isoformat(), days, step_s, site.timezone,
                 [(p.id, p.kind) for p in site.points],
                 [(m.id, m.measures, m.parent, m.power, m.energy) for m in site.meters]))
    made = made_once(f"synthetic-{hashlib.sha256(what.encode()).hexdigest()[:16]}.sqlite",
                     lambda new: _make(new, site, end_local, days, step_s))
    shutil.copyfile(made, path)
    os.chmod(path, 0o600)  # as a new store is
    return path


def made_once(name: str, make: Callable[[Path], object]) -> Path:
    """`CACHE/name`, made by `make(path)` the first time any worker of this run asks (the
    others wait for it, then read it)."""
    assert CACHE is not None, "set by tests/conftest.py for the run"
    made = CACHE / name
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not made.exists():
            make(CACHE / f"{name}.new")
            os.replace(CACHE / f"{name}.new", made)
    return made


def _make(path: Path, site: Site, end_local: dt.datetime, days: int, step_s: int) -> Path:
    end = end_local.replace(tzinfo=site.tz)
    t = end - dt.timedelta(days=days)
    children = [m for m in site.meters if m.parent]
    main = site.main_meter()
    energy: dict[str, float] = {}
    metered = {x for m in site.meters for x in (m.power, m.energy) if x}
    with Store(path, site.timezone) as store:
        batch: list[tuple] = []
        while t < end:
            local = t.astimezone(site.tz)
            hour = local.hour + local.minute / 60
            on = local.weekday() < 5 and 7 <= hour < 17
            wave = math.sin((hour - 9) / 24 * 2 * math.pi)
            kw = {m.id: (60.0 if m.measures == "ac" else 20.0 if m.measures == "lighting"
                         else 30.0) * (1.0 if on else 0.1) for m in children}
            if main is not None:
                kw[main.id] = sum(kw.values()) + 8.0  # exterior lights, lifts: unmetered
            for p in site.points:
                if p.id in metered:
                    continue
                v = {"temperature": 27.0 + 1.5 * wave - (1.5 if on else 0.0),
                     "outdoor_temperature": 30.0 + 4.0 * wave, "humidity": 70.0,
                     "setpoint": 26.0 if on else 24.0, "status": float(on),
                     "lighting": float(on), "occupancy": float(on), "dimming": 100.0,
                     "mode": 1.0, "outdoor_air": float(on)}.get(p.kind, 0.0)
                batch.append((p.id, t, v, "good"))
            for m in site.meters:
                if m.power:
                    batch.append((m.power, t, kw.get(m.id, 0.0), "good"))
                if m.energy:
                    energy[m.id] = energy.get(m.id, 0.0) + kw.get(m.id, 0.0) * step_s / 3600
                    batch.append((m.energy, t, energy[m.id], "good"))
            if len(batch) > 50_000:
                store.insert_readings(batch)
                batch = []
            t += dt.timedelta(seconds=step_s)
        store.insert_readings(batch)
        store.refresh_rollups()
    return path


def quick_hash(password: str) -> str:
    """A password hash for the users the synthetic stores are given: scrypt as the product
    stores it, at a work factor 32 times lower (each of the hundreds of logins in the tests
    took 0.1 s). `bems.users.password_ok` reads the factor from the hash; users made through
    the UI or the CLI in the tests get the product's own."""
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password, "scrypt:1024:8:1")
