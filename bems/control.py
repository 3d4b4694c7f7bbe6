"""The one writer: every BACnet write BEMS makes goes through `Writer`.

It refuses points that are not writable, clamps to the point's limits, writes at the site's
priority (never above it), skips writes that would change nothing, reads the priority array back
to confirm, records every attempt in the ledger (done, unchanged, rejected, failed, released),
and relinquishes (writes Null at the same priority) on release, at shutdown, and, after a crash,
at the next start for everything the ledger says is still held.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

from bems import reasons
from bems.errors import DeviceError, DeviceRefused
from bems.fieldbus import Bus, ControllerSchedule
from bems.intents import WriteIntent
from bems.plausible import valid_range
from bems.site import Device, Point, Site
from bems.storage import Store

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


@dataclass(frozen=True)
class WriteResult:
    point: str
    # done | unchanged | rejected | failed | unconfirmed | released | restored
    outcome: str
    value: float | None = None
    priority: int | None = None
    readback: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("done", "unchanged", "released", "restored")


def _wire_value(point: Point, value: float) -> Any:
    """The value as the object type expects it on the wire."""
    otype = point.object_type
    if otype == "binary-lighting-output":
        return "on" if value >= 0.5 else "off"
    if otype.startswith("binary"):
        return "active" if value >= 0.5 else "inactive"
    if otype.startswith("multi-state"):
        return int(round(value))
    return float(value)


class Writer:
    def __init__(self, site: Site, bus: Bus, store: Store,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
                 timeout_s: float | None = None,
                 store_lock: ContextManager | None = None):
        self.site, self.bus, self.store, self.clock = site, bus, store, clock
        # held around every use of the store: a runtime shares its one connection between
        # its workers (a transaction begun by one while another's is open fails)
        self.store_lock = store_lock or contextlib.nullcontext()
        self.timeout_s = timeout_s
        self._points = {p.id: p for p in site.points}
        # what we hold now: point → (value, priority), from the ledger, so a restart knows;
        # priority None for a point without a priority array (written directly)
        self.held: dict[str, tuple[float | None, int | None]] = {}
        # what a direct write replaced, to restore at release (oldest held write first)
        self.previous: dict[str, float] = {}
        self._schedules: dict[str, ControllerSchedule] = {}  # device → last confirmed push
        self._array: dict[str, bool] = {}  # point → does its object have a priority array
        for w in reversed(store.held_writes()):
            p = self._points.get(w.point)
            # written directly: the site says so, or the device had no priority array
            direct = p is not None and (not p.commandable or
                                        (w.priority is None and w.previous is not None))
            self.held[w.point] = (_float(w.value),
                                  None if direct else (w.priority or site.control.write_priority))
            if direct and w.previous is not None and _float(w.previous) is not None:
                self.previous.setdefault(w.point, _float(w.previous))

    def priority_for(self, point: Point, requested: int | None) -> int:
        return requested or point.priority or self.site.control.write_priority

    def floor_for(self, point: Point) -> int:
        """The most important priority BEMS may command on a point (its own)."""
        return point.priority or self.site.control.write_priority

    def _priority_problem(self, point: Point, priority: int, above_own: bool) -> str:
        floor = self.floor_for(point)
        if not 1 <= priority <= 16:
            return f"priority {priority} is not a BACnet priority (1..16)"
        if priority < floor and not above_own:
            return (f"priority {priority} is above what BEMS may command on this point "
                    f"({floor}..16); operators and safeties own the others")
        return ""

    def apply(self, intent: WriteIntent, above_own: bool = False,
              below_floor: bool = False) -> WriteResult:
        """Write an intent. `above_own` lets an explicit, audited command (an admin's `bems
        write --above-own-priority`) use a priority more important than BEMS's own;
        `below_floor` a cooling setpoint below the policy floor (`--below-policy-floor`)."""
        if intent.value is None:
            return self.release(intent.point, intent.source, intent.reason, intent.priority,
                                above_own)
        point = self._points.get(intent.point)
        if point is None:
            return self._reject(intent, None, f"no point {intent.point!r} in the site file")
        priority = self.priority_for(point, intent.priority)
        if not point.writable:
            return self._reject(intent, priority, "the point is not writable")
        problem = self._priority_problem(point, priority, above_own) or \
            _value_problem(point, intent.value) or \
            self._floor_problem(point, intent.value, below_floor)
        if problem:
            return self._reject(intent, priority, problem)
        value, note = float(intent.value), ""
        if point.min is not None and value < point.min:
            value, note = point.min, f" (clamped from {intent.value:g} to min {point.min:g})"
        if point.max is not None and value > point.max:
            value, note = point.max, f" (clamped from {intent.value:g} to max {point.max:g})"
        held = self.held.get(point.id)
        if not point.commandable or (held is not None and held[1] is None):
            return self._apply_direct(point, value, intent, note)
        if held == (value, priority):
            return WriteResult(point.id, "unchanged", value, priority)
        dev = self.site.device(point.device)
        try:
            has_array = self._has_priority_array(point)
        except DeviceError as err:
            return self._record(point, "write", value, priority, intent, "failed",
                                f"cannot read its priority array: {err}")
        if not has_array:  # a device whose object has none: behave as commandable = false
            return self._apply_direct(point, value, intent, note + _NO_ARRAY_NOTE)
        try:
            self.bus.write(dev.address, point.object, _wire_value(point, value), priority,
                               timeout=self.timeout_s)
        except DeviceRefused as err:
            return self._record(point, "write", value, priority, intent, "rejected", str(err))
        except DeviceError as err:
            # no answer: the write may have landed. Held with an unknown value, so it is
            # retried (never skipped as unchanged) and released when no longer wanted.
            self.held.setdefault(point.id, (None, priority))
            return self._record(point, "write", value, priority, intent, "failed", str(err))
        try:
            slots = self.bus.priority_array(dev.address, point.object, timeout=self.timeout_s)
        except DeviceError as err:
            # it may well have landed: held (to release), retried next time, never "done"
            self.held[point.id] = (None, priority)
            return self._record(point, "write", value, priority, intent, "unconfirmed",
                                note.strip(), readback=f"read-back failed: {err}")
        got = slots.get(priority)
        if not _same(got, _plain_number(point, value)):
            self.held[point.id] = (value, priority)
            return self._record(point, "write", value, priority, intent, "failed",
                                f"read-back shows {got!r} at priority {priority}", readback=got)
        winner = min(slots) if slots else priority
        if winner < priority:
            note += f" (priority {winner} holds {slots[winner]!r} and wins)"
        self.held[point.id] = (value, priority)
        return self._record(point, "write", value, priority, intent, "done", note.strip(),
                            readback=got, present=slots.get(winner))

    def release(self, point_id: str, source: str, reason: str,
                priority: int | None = None, above_own: bool = False) -> WriteResult:
        point = self._points.get(point_id)
        intent = WriteIntent(point_id, None, reason, source, priority)
        if point is None:
            return self._reject(intent, priority, f"no point {point_id!r} in the site file")
        held = self.held.get(point_id)
        if not point.commandable or (held is not None and held[1] is None):
            return self._restore(point, intent)
        prio = priority or (held[1] if held else self.priority_for(point, None))
        # a slot BEMS itself holds (the ledger says so) may always be released; another is
        # refused before anything is asked of the device
        problem = "" if held and held[1] == prio else \
            self._priority_problem(point, prio, above_own)
        if problem:
            return self._reject(intent, prio, problem)
        if held is None:  # not ours: is there a priority array to relinquish at all?
            try:
                if not self._has_priority_array(point):
                    return self._restore(point, intent)
            except DeviceError:
                pass  # the release below says what the device answers
        dev = self.site.device(point.device)
        try:
            self.bus.write(dev.address, point.object, None, prio, timeout=self.timeout_s)
            slots = self.bus.priority_array(dev.address, point.object, timeout=self.timeout_s)
        except DeviceRefused as err:
            return self._record(point, "release", None, prio, intent, "rejected", str(err))
        except DeviceError as err:
            return self._record(point, "release", None, prio, intent, "failed", str(err))
        if prio in slots:
            return self._record(point, "release", None, prio, intent, "failed",
                                f"priority {prio} still holds {slots[prio]!r}",
                                readback=slots[prio])
        self.held.pop(point_id, None)
        with self.store_lock:
            self.store.mark_released(point_id, prio, self.clock())
        # with every slot empty the device falls back to its relinquish default, not read here
        return self._record(point, "release", None, prio, intent, "released", readback="null",
                            present=slots[min(slots)] if slots else None)

    def _has_priority_array(self, point: Point) -> bool:
        """Whether the device's object has a priority array, asked once per point: a site
        file may say nothing (`commandable` defaults to true) of an object that has none, and
        a write there replaces the value for good unless BEMS keeps what it replaced."""
        known = self._array.get(point.id)
        if known is None:
            dev = self.site.device(point.device)
            try:
                self.bus.priority_array(dev.address, point.object, timeout=self.timeout_s)
                known = True
            except DeviceRefused as err:
                if err.code != "unknown-property":
                    raise
                known = False
                log.warning("%s: %s %s has no priority array; written as commandable = "
                            "false (the value it replaces is restored at release)",
                            point.id, dev.address, point.object)
            self._array[point.id] = known
        return known

    def _floor_problem(self, point: Point, value: object, below_floor: bool) -> str:
        floor = self.site.control.policy_min_cooling_setpoint
        if point.kind == "setpoint" and isinstance(value, (int, float)) and value < floor \
                and not below_floor:
            return (f"{value:g} °C is below the policy floor of {floor:g} °C for cooling "
                    "(state agencies cool at 25 °C or above)")
        return ""

    def _apply_direct(self, point: Point, value: float, intent: WriteIntent,
                      note: str) -> WriteResult:
        """A point without a priority array: remember the value it holds (the first time),
        write ours, read it back. Its release writes the remembered value back."""
        if self.held.get(point.id) == (value, None):
            return WriteResult(point.id, "unchanged", value, None)
        dev = self.site.device(point.device)
        prev = self.previous.get(point.id)
        if prev is None:
            try:
                prev = _float(self.bus.read(dev.address, point.object, timeout=self.timeout_s))
            except DeviceError as err:
                return self._record(point, "write", value, None, intent, "failed",
                                    f"cannot read the value it would replace: {err}")
            if prev is None:
                return self._record(point, "write", value, None, intent, "rejected",
                                    "the value it would replace is not a number: it could not "
                                    "be restored")
            self.previous[point.id] = prev
        try:
            self.bus.write(dev.address, point.object, _wire_value(point, value), None,
                           timeout=self.timeout_s)
        except DeviceRefused as err:
            if point.id not in self.held:  # nothing of ours there: nothing to restore later
                self.previous.pop(point.id, None)
            return self._record(point, "write", value, None, intent, "rejected", str(err),
                                previous=prev)
        except DeviceError as err:
            self.held.setdefault(point.id, (None, None))
            return self._record(point, "write", value, None, intent, "failed", str(err),
                                previous=prev)
        try:
            got = self.bus.read(dev.address, point.object, timeout=self.timeout_s)
        except DeviceError as err:
            self.held[point.id] = (None, None)
            return self._record(point, "write", value, None, intent, "unconfirmed",
                                note.strip(), readback=f"read-back failed: {err}",
                                previous=prev)
        if not _same(got, _plain_number(point, value)):
            self.held[point.id] = (value, None)
            return self._record(point, "write", value, None, intent, "failed",
                                f"read-back shows {got!r}", readback=got, previous=prev)
        self.held[point.id] = (value, None)
        return self._record(point, "write", value, None, intent, "done",
                            (note + f" (no priority array: replaces {prev:g}, restored at "
                                    "release)").strip(), readback=got, previous=prev,
                            present=got)

    def _restore(self, point: Point, intent: WriteIntent) -> WriteResult:
        prev = self.previous.get(point.id)
        if prev is None:
            return self._reject(intent, None, "BEMS did not write this point (no priority "
                                              "array): there is no value of its to restore")
        dev = self.site.device(point.device)
        try:
            self.bus.write(dev.address, point.object, _wire_value(point, prev), None,
                           timeout=self.timeout_s)
            got = self.bus.read(dev.address, point.object, timeout=self.timeout_s)
        except DeviceRefused as err:
            return self._record(point, "release", prev, None, intent, "rejected", str(err))
        except DeviceError as err:
            return self._record(point, "release", prev, None, intent, "failed", str(err))
        if not _same(got, _plain_number(point, prev)):
            return self._record(point, "release", prev, None, intent, "failed",
                                f"read-back shows {got!r}, not the restored {prev:g}",
                                readback=got)
        self.held.pop(point.id, None)
        self.previous.pop(point.id, None)
        with self.store_lock:
            self.store.mark_released(point.id, None, self.clock())
        return self._record(point, "release", prev, None, intent, "restored", readback=got,
                            present=got)

    def release_all(self, source: str, reason: str) -> list[WriteResult]:
        return [self.release(pid, source, reason, prio) for pid, (_, prio) in
                list(self.held.items())]

    def recover(self, wanted: Callable[[str], bool] = lambda point: False) -> list[WriteResult]:
        """After a restart: release every write the ledger says is held that no strategy wants
        (a strategy that wants one re-asserts it on its next run)."""
        results = []
        for pid, (_, prio) in list(self.held.items()):
            if not wanted(pid):
                results.append(self.release(pid, "recovery",
                                            reasons.reason("recovered"),
                                            prio))
        return results

    def push_schedule(self, device: Device, schedule: ControllerSchedule,
                      source: str = "schedule",
                      reason: str = reasons.reason("schedule")) -> WriteResult:
        """Write a controller's weekly schedule, calendar and exceptions, read them back, and
        put the attempt in the ledger like any other write. An identical push to the same
        device since this writer started is skipped."""
        target = f"{device.id}:{device.schedule_object}"
        intent = WriteIntent(target, None, reason, source)
        if not device.schedule_object:
            return self._reject(intent, None, f"device {device.id} has no schedule object")
        if self._schedules.get(device.id) == schedule:
            return WriteResult(target, "unchanged")

        def record(outcome: str, error: str = "", readback: Any = None) -> WriteResult:
            with self.store_lock:
                self.store.record_write(point=target, action="schedule",
                                        value=schedule.describe(), priority=None,
                                        source=source, reason=reason, outcome=outcome,
                                        error=error or None, readback=readback,
                                        device=device.id, object=device.schedule_object,
                                        ts=self.clock())
            if outcome in ("rejected", "failed"):
                log.warning("schedule %s: %s (%s)", target, outcome, error)
            return WriteResult(target, outcome, None, None, readback, error)

        try:
            self.bus.write_schedule(device, schedule)
        except DeviceRefused as err:
            return record("rejected", str(err))
        except DeviceError as err:
            return record("failed", str(err))
        try:
            got = self.bus.read_schedule(device)
        except DeviceError as err:
            return record("done", readback=f"read-back failed: {err}")
        if got != schedule:
            return record("failed", "read-back differs from what was written", got.describe())
        self._schedules[device.id] = schedule
        return record("done", readback="same")

    def sync_clock(self, device: Device, local_now: dt.datetime, before_s: float,
                   tolerance_s: float = 60.0) -> WriteResult:
        """Set a controller's clock to BEMS's local time (TimeSynchronization), read it back,
        and put the attempt in the ledger like any other write: `done` when the clock is then
        within `tolerance_s`, else `failed`. The result's value is the drift after, seconds."""
        target = f"{device.id}:clock"
        after, outcome, error = before_s, "failed", ""
        try:
            self.bus.sync_clock(device, local_now)
            after = round((self.bus.read_clock(device) - local_now).total_seconds())
            outcome = "done" if abs(after) <= tolerance_s else "failed"
            if outcome == "failed":
                error = f"the clock is still {after:+.0f} s off"
        except DeviceError as err:
            error = str(err)
        with self.store_lock:
            self.store.record_write(point=target, action="time-sync", value=after,
                                    priority=None, source="clock",
                                    reason=reasons.reason("clock_off", seconds=before_s),
                                    outcome=outcome, error=error or None,
                                    readback=f"{after:+.0f} s", device=device.id,
                                    object=f"device,{device.instance}", ts=self.clock())
        if outcome != "done":
            log.warning("time sync of %s failed: %s", device.id, error)
        return WriteResult(target, outcome, after, None, f"{after:+.0f} s", error)

    def _reject(self, intent: WriteIntent, priority: int | None, why: str) -> WriteResult:
        point = self._points.get(intent.point)
        with self.store_lock:
            self.store.record_write(point=intent.point, action="write"
                                    if intent.value is not None else "release",
                                    value=intent.value, priority=priority,
                                    source=intent.source, reason=intent.reason,
                                    outcome="rejected", error=why,
                                    device=point.device if point else None,
                                    object=point.object if point else None, ts=self.clock())
        log.warning("write %s=%s rejected: %s", intent.point, intent.value, why)
        return WriteResult(intent.point, "rejected", intent.value, priority, error=why)

    def _record(self, point: Point, action: str, value: float | None, priority: int | None,
                intent: WriteIntent, outcome: str, error: str = "",
                readback: Any = None, previous: float | None = None,
                present: Any = None) -> WriteResult:
        """Audit an attempt. `present`: the point's present value as the read-back shows it
        (the winning slot of its priority array, or what it holds): kept as a reading, so
        screens show what a write did without waiting for the next poll."""
        ts = self.clock()
        present = _float(present)
        if present is not None:
            lo, hi = valid_range(point)
            if not lo <= present <= hi:  # another party's implausible slot: the poll
                present = None           # stores it as a bad reading, with its raw value
        with self.store_lock:
            self.store.record_write(point=point.id, action=action, value=value,
                                    priority=priority, source=intent.source,
                                    reason=intent.reason, outcome=outcome, error=error or None,
                                    readback=readback, device=point.device,
                                    object=point.object, ts=ts, previous=previous)
            if present is not None:
                # newer than a reading the poll just before may have stored in the same second
                self.store.insert_readings([(point.id, ts, present, "good")], newer=True)
        if outcome in ("rejected", "failed"):
            log.warning("%s %s: %s (%s)", action, point.id, outcome, error)
        return WriteResult(point.id, outcome, value, priority, readback, error)


_NO_ARRAY_NOTE = " (the device has no priority array for this object: written as " \
    "commandable = false)"
REAL_MAX = 3.4028234663852886e38  # the largest BACnet Real (IEEE 754 single)


def _plain_number(point: Point, value: float) -> float:
    if point.object_type.startswith("binary"):
        return 1.0 if value >= 0.5 else 0.0
    if point.object_type.startswith("multi-state"):
        return float(int(round(value)))
    return value


def _value_problem(point: Point, value: object) -> str:
    """Why a value cannot go to a point at all (clamping to limits comes after)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if abs(value) > REAL_MAX:
        return f"{value:g} is beyond what a field device holds (a Real is at most ±3.4e38)"
    otype = point.object_type
    if otype.startswith("binary") and value not in (0, 1):
        return f"{value:g}: a binary point takes 0 (off) or 1 (on)"
    if otype.startswith("multi-state") and (value != int(value) or value < 1):
        return f"{value:g}: a multi-state point takes a whole number from 1"
    return ""


def _same(got: Any, expected: float) -> bool:
    """A read-back that confirms the value written (NaN, text or nothing never do)."""
    return isinstance(got, (int, float)) and not isinstance(got, bool) and \
        math.isfinite(got) and abs(float(got) - expected) <= 1e-3


def _float(value: Any) -> float | None:
    """A finite number, or None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
