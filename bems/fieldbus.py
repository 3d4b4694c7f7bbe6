"""The field bus as BEMS's core sees it: what the runtime and the one writer need from the
building's network, whatever carries it.

`connectors.bacnet.fieldbus.BacnetFieldBus` is the production implementation (bacpypes3 over
UDP); `connectors.memory.MemoryBus` is an in-memory model of the same devices, for fast tests and
dry runs. Addresses are the site file's `HOST:PORT`, objects `type,instance`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from bems.site import Device

# a batch of readings for the store: (point, time, value, quality)
Sink = Callable[[list[tuple]], Any]
OnValue = Callable[[str, Any, dt.datetime], None]


@dataclass
class DeviceHealth:
    device: str
    state: str = "unknown"  # ok | stale
    failures: int = 0
    retry_at: float = 0.0  # monotonic time before which a stale device is not tried
    last_ok: dt.datetime | None = None
    last_error: str = ""
    last_duration_s: float = 0.0
    batch: int = 0  # points per ReadPropertyMultiple (0: not yet known)
    rpm: bool = True

    def answered(self, now: dt.datetime, error: str = "") -> bool:
        """The device answered this cycle; True when it was stale before (it is back)."""
        back = self.state == "stale"
        self.state, self.failures, self.last_ok, self.last_error = "ok", 0, now, error
        return back

    def failed(self, error: str, mono: float, base_s: float, max_s: float) -> bool:
        """The device did not answer: stale, retried after an exponential back-off from the
        monotonic time `mono`. True on the first failure of an outage."""
        first = self.state != "stale"
        self.failures += 1
        self.state, self.last_error = "stale", error
        self.retry_at = mono + min(max_s, base_s * 2 ** (self.failures - 1))
        return first

    def due(self, mono: float) -> bool:
        return self.state != "stale" or mono >= self.retry_at


def mark_stale(values: dict, rows: list, points, now: dt.datetime, first: bool) -> None:
    """A silent device's points read `stale`; the store gets one stale marker per outage."""
    for p in points:
        values[p.id] = (None, "stale")
        if first:
            rows.append((p.id, now, None, "stale"))


@dataclass(frozen=True)
class PollResult:
    time: dt.datetime
    values: dict[str, tuple[Any, str]]  # point → (value, quality)
    devices: dict[str, DeviceHealth]
    duration_s: float
    skipped: tuple[str, ...] = ()  # devices in back-off, not tried this cycle


@dataclass(frozen=True)
class ControllerSchedule:
    """What a controller that schedules locally holds: the week (Monday first, each day a list
    of (HH:MM, value) switch times, 1.0 occupied and 0.0 unoccupied), the calendar's off days,
    and make-up working days (they follow Monday's hours)."""

    weekly: tuple[tuple[tuple[str, float], ...], ...]
    off_days: tuple[dt.date, ...]
    makeup_days: tuple[dt.date, ...]

    def describe(self) -> str:
        week = "; ".join(",".join(f"{t}={v:g}" for t, v in day) or "-" for day in self.weekly)
        return (f"week [{week}], {len(self.off_days)} off days, "
                f"{len(self.makeup_days)} make-up days")


class Bus(Protocol):
    """Reads and writes by address: enough for the writer."""

    def write(self, address: str, obj: str, value: Any, priority: int | None,
              timeout: float | None = None) -> None:
        """Write a present value at a priority; value None relinquishes (writes Null)."""

    def priority_array(self, address: str, obj: str,
                       timeout: float | None = None) -> dict[int, Any]:
        """The commanded slots of an object: {priority: value}."""

    def read(self, address: str, obj: str, prop: str = "present-value",
             timeout: float | None = None) -> Any:
        """One property, as plain Python (numbers as float, binary as 0/1)."""


class FieldBus(Bus, Protocol):
    """Everything the runtime needs: the writer's part, and reading the whole site."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def poll(self, sink: Sink | None = None) -> PollResult:
        """Read every point of every device that is due (one cycle); readings go to sink."""

    def subscribe(self, on_value: OnValue) -> int:
        """Subscribe to changes of the points that ask for them (`cov`); returns how many."""

    def unsubscribe(self) -> None: ...

    def backfill(self, since: dt.datetime, sink: Sink) -> dict[str, int]:
        """What the devices logged since `since`, into sink; count per point."""

    def read_clock(self, device: Device) -> dt.datetime:
        """The device's own local date and time (naive), as its schedules see it."""

    def sync_clock(self, device: Device, local: dt.datetime) -> None:
        """Set the device's clock to a local date and time (TimeSynchronization)."""

    def write_schedule(self, device: Device, schedule: ControllerSchedule) -> None: ...

    def read_schedule(self, device: Device) -> ControllerSchedule: ...
