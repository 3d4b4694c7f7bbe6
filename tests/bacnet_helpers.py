"""A virtual centre running in a background thread, for connector and runtime tests."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import threading

from bems.site import Site
from connectors.simulator.centre import VirtualCentre


def quick_site(site: Site, timeout_s: float = 1.0, retries: int = 0) -> Site:
    """The demo site with short device timeouts, so failure tests run in seconds."""
    devices = tuple(dataclasses.replace(d, timeout_s=timeout_s, retries=retries)
                    for d in site.devices)
    return dataclasses.replace(site, devices=devices)


class RunningCentre:
    """`paused`: start() returns once the devices answer, and simulated time starts only at
    go() — so a test can start BEMS first, however long that takes on a loaded machine."""

    def __init__(self, site: Site, start: dt.datetime, speed: float = 60.0,
                 paused: bool = False, on_step=None):
        self.centre = VirtualCentre(site)
        self.on_step = on_step
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.paused = paused
        self._gate: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, args=(start, speed), daemon=True)

    def _run(self, start: dt.datetime, speed: float) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._gate = asyncio.Event() if self.paused else None
            await self.centre.serve(start, speed=speed, gate=self._gate,
                                    ready=self._ready.set if self.paused else None,
                                    live=None if self.paused else self._ready.set,
                                    on_step=self.on_step)
        try:
            asyncio.run(main())
        except BaseException as err:  # surfaced to the test in start()
            self._error = err
            self._ready.set()

    def go(self) -> None:
        """Let simulated time run (a paused centre)."""
        self._loop.call_soon_threadsafe(self._gate.set)

    def start(self) -> VirtualCentre:
        self._thread.start()
        if not self._ready.wait(60) or self._error:
            raise RuntimeError(f"virtual centre did not start: {self._error!r}")
        return self.centre

    def stop(self) -> None:
        self.centre.stop()
        self._thread.join(60)


class LockStep:
    """BEMS in lock step with the centre: after every 15-minute step (the devices showing its
    values), the runtime polls, takes its COV values and decides (and writes) at the step's
    end, before the next step reads the devices. Nothing depends on how fast the machine is
    (BEMS's jobs paced by the wall clock beside a paced centre once missed a cool-down under
    load). At `until` (local) the centre holds still, its devices still served, for the test
    to look at them and stop BEMS; `release()` lets it end."""

    def __init__(self, runtime_ref: list, until: dt.datetime):
        self.runtime_ref, self.until = runtime_ref, until
        self.reached, self._release = threading.Event(), threading.Event()
        self.errors: list[BaseException] = []

    def __call__(self, step, values) -> None:
        if self.reached.is_set() or not self.runtime_ref:
            return
        rt = self.runtime_ref[0]
        try:
            rt.poll()
            rt.flush_cov()
            rt.run_strategies()
        except BaseException as err:  # noqa: BLE001 - surfaced to the test
            self.errors.append(err)
        local = step.time.astimezone(rt.site.tz).replace(tzinfo=None)
        if local >= self.until:
            self.reached.set()
            self._release.wait(120)

    def release(self) -> None:
        self._release.set()
