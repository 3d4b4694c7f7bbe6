"""Running the virtual centre as a process: history into a store, then paced BACnet service.

While it runs, lines on standard input inject faults (`fc2:offline`, `fc2:online`,
`fc3:slow=2`, `f1.core.temp:stuck=30`, `f1.core.temp:unstuck`, `main:reset`) and `stop` ends it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

from bems.site import Site
from bems.storage import Store
from connectors.simulator.centre import VirtualCentre
from connectors.simulator.devices import SimulatorError


def fill_history(centre: VirtualCentre, store: Store, end_local: dt.datetime, days: int) -> int:
    """Weeks of past data at once: the model un-paced under the building's time clock (for
    a store alone; a centre that goes on serving takes its history from `serve`'s own run)."""
    rows = centre.history(end_local, days, store.insert_readings)
    store.refresh_rollups()
    return rows


class HistorySink:
    """Where the served centre's steps before its start go: a store, as if BEMS had polled
    them. Used from the physics thread; `finish` rolls the store up and closes it."""

    def __init__(self, db: Path, timezone: str):
        self.store = Store(db, timezone)
        self.rows = 0

    def __call__(self, batch: list[tuple]) -> None:
        self.store.insert_readings(batch)
        self.rows += len(batch)

    def finish(self) -> int:
        self.store.refresh_rollups()
        self.store.close()
        return self.rows


def serve(site: Site, start_local: dt.datetime, speed: float, faults: list[str],
          echo: Callable[[str], None], history_days: int = 0, db: Path | None = None,
          read_stdin: bool = True, on_ready: Callable[[VirtualCentre], None] | None = None,
          ) -> None:
    centre = VirtualCentre(site)
    sink = None
    if history_days > 0:
        if db is None:
            raise SimulatorError("history needs a database (--db)")
        sink = HistorySink(db, site.timezone)

    def history_done() -> None:
        if sink is not None:
            n = sink.finish()
            echo(f"history: {history_days} days before {start_local:%Y-%m-%d %H:%M}, "
                 f"{n} readings into {db}")

    asyncio.run(_serve(centre, start_local, speed, faults, echo, read_stdin, on_ready,
                       history_days, sink, history_done))


async def _serve(centre: VirtualCentre, start_local: dt.datetime, speed: float,
                 faults: list[str], echo: Callable[[str], None], read_stdin: bool,
                 on_ready: Callable[[VirtualCentre], None] | None, history_days: int = 0,
                 sink: HistorySink | None = None,
                 history_done: Callable[[], None] = lambda: None) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, centre.stop)

    def ready() -> None:
        for dev in centre.site.devices:
            echo(f"device {dev.id} (instance {dev.instance}) on {dev.address}: "
                 f"{len(centre.site.points_of(dev.id))} points")
        for spec in faults:
            echo("fault " + centre.apply_fault(spec))
        if read_stdin:
            threading.Thread(target=_stdin_control, args=(centre, loop, echo),
                             daemon=True).start()

    def live() -> None:  # from the physics thread, once the model has reached the start
        history_done()
        pace = f"{speed:g}x real time" if speed > 0 else "as fast as possible"
        echo(f"simulator ready: from {start_local:%Y-%m-%d %H:%M} local, {pace}")
        if on_ready is not None:
            on_ready(centre)

    history_from = start_local - dt.timedelta(days=history_days) if sink is not None else None
    await centre.serve(start_local, speed, ready=ready, live=live, history_from=history_from,
                       sink=sink)
    echo(f"simulator stopped at {centre.sim_now:%Y-%m-%d %H:%M} (simulated), "
         f"{centre.steps} steps")


def _stdin_control(centre: VirtualCentre, loop: asyncio.AbstractEventLoop,
                   echo: Callable[[str], None]) -> None:
    for line in sys.stdin:
        cmd = line.strip()
        if not cmd:
            continue
        if cmd == "stop":
            loop.call_soon_threadsafe(centre.stop)
            return

        def apply(spec: str = cmd) -> None:
            try:
                echo("fault " + centre.apply_fault(spec))
            except SimulatorError as err:
                echo(f"error: {err}")
        loop.call_soon_threadsafe(apply)
