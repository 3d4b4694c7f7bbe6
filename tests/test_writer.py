"""Every rule of the one writer, against the in-memory device model: milliseconds, no sockets."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from bems.control import Writer
from bems.errors import DeviceUnreachable
from bems.fieldbus import ControllerSchedule
from bems.intents import WriteIntent
from connectors.memory import MemoryBus

T = dt.datetime(2026, 7, 6, 1, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def bus(site):
    return MemoryBus(site, clock=lambda: T)


@pytest.fixture
def writer(site, bus, store):
    return Writer(site, bus, store, clock=lambda: T)


def _ledger(store, point):
    return [(w.action, w.outcome) for w in reversed(store.writes(point=point))]


def test_writes_at_the_site_priority_and_reads_back(writer, bus, store):
    r = writer.apply(WriteIntent("f1.p1.sp", 26.0, "occupied"))
    assert (r.outcome, r.priority, r.readback) == ("done", 12, 26.0)
    assert bus.slots("f1.p1.sp") == {12: 26.0}
    w = store.writes(point="f1.p1.sp")[0]
    assert (w.outcome, w.priority, w.reason, w.device) == ("done", 12, "occupied", "fc1")
    assert [h.point for h in store.held_writes()] == ["f1.p1.sp"]


def test_clamps_to_the_points_limits_and_says_so(writer, bus, site):
    sp = site.point("f1.p1.sp")
    r = writer.apply(WriteIntent("f1.p1.sp", sp.max + 10, "too warm"))
    assert r.outcome == "done" and r.value == sp.max and "clamped" in r.error
    r = writer.apply(WriteIntent("f1.p1.sp", sp.min - 10, "too cold"), below_floor=True)
    assert r.value == sp.min and bus.slots("f1.p1.sp") == {12: sp.min}


def test_a_cooling_setpoint_below_the_policy_floor_is_refused(writer, bus, store, site):
    """The 25 °C floor holds on every path, the command line's included: only an explicit,
    audited `--below-policy-floor` passes it."""
    r = writer.apply(WriteIntent("f1.p1.sp", 18.0, "cli"))
    assert r.outcome == "rejected" and "policy floor" in r.error
    assert bus.slots("f1.p1.sp") == {}
    assert _ledger(store, "f1.p1.sp") == [("write", "rejected")]
    assert writer.apply(WriteIntent("f1.p1.sp", 25.0, "at the floor")).outcome == "done"
    r = writer.apply(WriteIntent("f1.p1.sp", 24.0, "server room"), below_floor=True)
    assert r.outcome == "done" and bus.slots("f1.p1.sp") == {12: 24.0}


@pytest.mark.parametrize("value", [1e308, -1e39, 3.5e38])
def test_a_number_no_field_device_holds_is_refused(writer, bus, value):
    r = writer.apply(WriteIntent("f1.p1.light", value, "cli"))
    assert r.outcome == "rejected" and "Real" in r.error
    assert bus.writes == []


def test_an_object_without_a_priority_array_is_found_and_restored(site, bus, store):
    """A site file that says nothing of `commandable` for an object the device serves
    without a priority array (another make's gateway): BEMS finds out before writing, keeps
    the value it replaces and restores it at release, in this run and after a restart."""
    bus.no_priority_array.add("f1.p1.sp")
    bus.set("f1.p1.sp", 24.0)  # what the controller holds
    w = Writer(site, bus, store, clock=lambda: T)
    r = w.apply(WriteIntent("f1.p1.sp", 26.5, "occupied"))
    assert r.outcome == "done" and r.priority is None and "no priority array" in r.error, r
    assert bus.value("f1.p1.sp") == 26.5
    assert w.apply(WriteIntent("f1.p1.sp", 26.5, "again")).outcome == "unchanged"
    r = w.release("f1.p1.sp", "test", "done with it")
    assert r.outcome == "restored" and bus.value("f1.p1.sp") == 24.0
    assert store.held_writes() == []
    # held when BEMS stopped (a crash): the next writer restores it from the ledger
    w.apply(WriteIntent("f1.p1.sp", 27.0, "occupied"))
    again = Writer(site, bus, store, clock=lambda: T)
    (r,) = again.recover()
    assert r.outcome == "restored" and bus.value("f1.p1.sp") == 24.0
    # a release of a point BEMS never wrote: nothing to restore, and nothing written
    n = len(bus.writes)
    r = Writer(site, bus, store, clock=lambda: T).release("f1.p1.sp", "cli", "release", 12)
    assert r.outcome == "rejected" and "no priority array" in r.error and len(bus.writes) == n


def test_never_above_its_own_priority(writer, bus, store):
    for prio in (8, 1):
        r = writer.apply(WriteIntent("f1.p1.sp", 26.0, "operator slot", priority=prio))
        assert r.outcome == "rejected" and "above" in r.error
    assert bus.slots("f1.p1.sp") == {}
    assert _ledger(store, "f1.p1.sp") == [("write", "rejected"), ("write", "rejected")]
    # a lower priority (a larger number) is allowed
    assert writer.apply(WriteIntent("f1.p1.sp", 26.0, "low", priority=14)).outcome == "done"
    assert bus.slots("f1.p1.sp") == {14: 26.0}


def test_a_release_above_its_own_priority_is_refused_before_asking_the_device(writer, bus,
                                                                            monkeypatch):
    """`bems release … --priority 8` on a point BEMS never wrote: refused at once (it asked
    the device about its priority array first, and waited out its timeout where none
    answered)."""
    asked = []
    for name in ("read", "priority_array", "write"):
        real = getattr(bus, name)
        monkeypatch.setattr(bus, name, lambda *a, _r=real, _n=name, **k: (asked.append(_n),
                                                                           _r(*a, **k))[1])
    r = writer.release("f1.p1.sp", "cli", "release", priority=8)
    assert r.outcome == "rejected" and "above" in r.error and asked == []


def test_refuses_points_that_are_not_writable_or_unknown(writer, bus, store):
    r = writer.apply(WriteIntent("f1.p1.temp", 20.0, "a sensor"))
    assert r.outcome == "rejected" and "not writable" in r.error
    r = writer.apply(WriteIntent("no.such.point", 1.0, "typo"))
    assert r.outcome == "rejected" and "no point" in r.error
    assert bus.writes == []
    assert _ledger(store, "no.such.point") == [("write", "rejected")]


def test_a_write_that_changes_nothing_is_skipped(writer, bus):
    assert writer.apply(WriteIntent("f2.core.light", 1.0, "occupied")).outcome == "done"
    assert writer.apply(WriteIntent("f2.core.light", 1.0, "occupied")).outcome == "unchanged"
    assert len(bus.writes) == 1
    assert writer.apply(WriteIntent("f2.core.light", 0.0, "sweep")).outcome == "done"
    assert len(bus.writes) == 2


def test_read_back_mismatch_is_failed_and_still_held(writer, bus, store):
    bus.lie["f1.p2.sp"] = 30.0  # the device shows something else at our priority
    r = writer.apply(WriteIntent("f1.p2.sp", 26.0, "occupied"))
    assert r.outcome == "failed" and "read-back" in r.error
    assert "f1.p2.sp" in writer.held  # it may have landed: it is released like any other
    assert [w.point for w in store.held_writes()] == ["f1.p2.sp"]
    del bus.lie["f1.p2.sp"]
    assert writer.release_all("test", "cleanup")[0].outcome == "released"
    assert bus.slots("f1.p2.sp") == {}


def test_read_back_that_cannot_be_read_keeps_the_write_held(site, store):
    class NoReadBack(MemoryBus):  # answers until written to, then no more
        def priority_array(self, address, obj, timeout=None):
            if self.writes:
                raise DeviceUnreachable("no answer")
            return super().priority_array(address, obj, timeout)

    bus = NoReadBack(site)
    w = Writer(site, bus, store, clock=lambda: T)
    r = w.apply(WriteIntent("f1.p1.sp", 26.0, "occupied"))
    assert r.outcome == "unconfirmed" and "read-back failed" in r.readback  # never "done"
    assert w.held["f1.p1.sp"] == (None, 12)  # held, and tried again next time
    assert w.apply(WriteIntent("f1.p1.sp", 26.0, "occupied")).outcome == "unconfirmed"
    assert [x.point for x in store.held_writes()] == ["f1.p1.sp", "f1.p1.sp"]


def test_refused_and_unreachable_devices_are_in_the_ledger(writer, bus, store):
    bus.refuse.add("f1.p1.sp")
    assert writer.apply(WriteIntent("f1.p1.sp", 26.0, "x")).outcome == "rejected"
    bus.offline.add("fc2")  # away before BEMS knew its object: nothing is sent, nothing held
    r = writer.apply(WriteIntent("f2.p1.sp", 26.0, "x"))
    assert r.outcome == "failed" and "priority array" in r.error and bus.writes == []
    assert writer.held == {}
    bus.offline.clear()  # known now; then away while the write is on its way
    writer.apply(WriteIntent("f2.p1.sp", 25.5, "x"))
    writer.release("f2.p1.sp", "x", "x")
    bus.offline.add("fc2")
    assert writer.apply(WriteIntent("f2.p1.sp", 26.0, "x")).outcome == "failed"
    assert _ledger(store, "f1.p1.sp") == [("write", "rejected")]
    assert _ledger(store, "f2.p1.sp") == [("write", "failed"), ("write", "done"),
                                          ("release", "released"), ("write", "failed")]
    # no answer: it may have landed, so it counts as held (released at stop or restart), and
    # the next identical intent is tried again, not skipped
    assert [w.point for w in store.held_writes()] == ["f2.p1.sp"]
    assert writer.held == {"f2.p1.sp": (None, 12)}
    bus.offline.clear()
    assert writer.apply(WriteIntent("f2.p1.sp", 26.0, "x")).outcome == "done"


def test_a_higher_priority_that_wins_is_noted(writer, bus, site):
    bus.objects["f1.p1.sp"].slots[8] = 24.0  # an operator at the panel
    r = writer.apply(WriteIntent("f1.p1.sp", 26.0, "occupied"))
    assert r.outcome == "done" and "priority 8" in r.error and "wins" in r.error
    writer.release("f1.p1.sp", "test", "done")
    assert bus.slots("f1.p1.sp") == {8: 24.0}  # ours gone, the operator's untouched


def test_what_a_write_leaves_on_the_device_is_a_reading_at_once(site, bus, store):
    """The zones screen shows what a write did without waiting for the next poll: the present
    value the read-back implies (the winning slot, or what a point without a priority array
    holds) is kept as a reading; nothing when the device falls back to a default not read, or
    when what it shows is implausible for the point (the poll stores that as a bad reading)."""
    now = [T]
    w = Writer(site, bus, store, clock=lambda: now[0])

    def step(intent=None, release=None):
        now[0] += dt.timedelta(seconds=30)
        r = w.apply(intent) if intent else w.release(release, "test", "done")
        got = store.latest(["f1.p1.sp", "f1.p1.light"], now=now[0])
        return r, {p: v for p, (ts, v, q) in got.items() if ts == now[0]}

    # the poll just before, in the same second, read the old value: the write's is newer
    store.insert_readings([("f1.p1.sp", T + dt.timedelta(seconds=30), 24.0, "good")])
    r, got = step(WriteIntent("f1.p1.sp", 26.0, "occupied"))
    assert r.outcome == "done" and got == {"f1.p1.sp": 26.0}
    bus.objects["f1.p1.sp"].slots[8] = 24.0  # an operator at the panel: the device shows 24
    r, got = step(WriteIntent("f1.p1.sp", 26.5, "occupied"))
    assert r.outcome == "done" and got == {"f1.p1.sp": 24.0}
    bus.objects["f1.p1.sp"].slots[8] = 3.4e38  # a panel's "no value": not a reading
    r, got = step(WriteIntent("f1.p1.sp", 27.0, "occupied"))
    assert r.outcome == "done" and got == {}
    bus.objects["f1.p1.sp"].slots[8] = 24.0
    r, got = step(release="f1.p1.sp")
    assert r.outcome == "released" and got == {"f1.p1.sp": 24.0}
    del bus.objects["f1.p1.sp"].slots[8]
    w.apply(WriteIntent("f1.p1.sp", 26.0, "occupied"))
    r, got = step(release="f1.p1.sp")  # every slot empty: its relinquish default, unread
    assert r.outcome == "released" and got == {}
    r, got = step(WriteIntent("f1.p1.sp", 18.0, "cli"))  # under the floor: refused
    assert r.outcome == "rejected" and got == {}
    bus.no_priority_array.add("f1.p1.light")
    bus.set("f1.p1.light", 0.0)
    r, got = step(WriteIntent("f1.p1.light", 1.0, "occupied"))
    assert r.outcome == "done" and got == {"f1.p1.light": 1.0}
    r, got = step(release="f1.p1.light")
    assert r.outcome == "restored" and got == {"f1.p1.light": 0.0}


def test_release_writes_null_at_the_same_priority(writer, bus, store):
    writer.apply(WriteIntent("f1.p1.sp", 26.0, "occupied", priority=14))
    r = writer.release("f1.p1.sp", "strategy", "no longer wanted")
    assert (r.outcome, r.priority) == ("released", 14)
    assert bus.slots("f1.p1.sp") == {} and writer.held == {}
    assert store.held_writes() == []
    assert _ledger(store, "f1.p1.sp") == [("write", "done"), ("release", "released")]
    assert writer.apply(WriteIntent("f1.p1.sp", None, "again")).outcome == "released"


def test_a_restart_releases_what_the_ledger_says_is_held(site, bus, store):
    first = Writer(site, bus, store, clock=lambda: T)
    for pid, v in (("f1.p1.sp", 27.5), ("f2.core.ac", 0.0), ("f3.p4.light", 0.0)):
        assert first.apply(WriteIntent(pid, v, "held by a process about to die")).ok
    del first  # no clean stop: a crash
    second = Writer(site, bus, store, clock=lambda: T)
    assert set(second.held) == {"f1.p1.sp", "f2.core.ac", "f3.p4.light"}
    results = second.recover(wanted=lambda p: p == "f2.core.ac")
    assert {r.point for r in results} == {"f1.p1.sp", "f3.p4.light"}
    assert bus.slots("f1.p1.sp") == {} and bus.slots("f2.core.ac") == {12: 0.0}
    assert {w.point for w in store.held_writes()} == {"f2.core.ac"}
    assert {w.source for w in store.writes(action="release")} == {"recovery"}


def test_release_all_at_shutdown(writer, bus, store):
    for pid in ("f1.p1.sp", "f1.p1.ac", "f1.p1.light"):
        writer.apply(WriteIntent(pid, 1.0 if not pid.endswith("sp") else 26.0, "x"))
    assert all(r.outcome == "released" for r in writer.release_all("shutdown", "stop"))
    assert all(bus.slots(p) == {} for p in ("f1.p1.sp", "f1.p1.ac", "f1.p1.light"))
    assert store.held_writes() == []


def test_a_release_the_device_does_not_confirm_stays_held(writer, bus, store):
    writer.apply(WriteIntent("f1.p1.sp", 26.0, "x"))
    bus.offline.add("fc1")
    assert writer.release("f1.p1.sp", "shutdown", "stop").outcome == "failed"
    assert [w.point for w in store.held_writes()] == ["f1.p1.sp"]  # the next start retries


def test_controller_schedule_push_is_read_back_and_in_the_ledger(site, writer, bus, store):
    from bems.schedules import for_controller

    dev = next(d for d in site.devices if d.schedule_object)
    plan = for_controller(site, dev, dt.date(2026, 7, 6))
    r = writer.push_schedule(dev, plan)
    assert r.outcome == "done" and bus.schedules[dev.id] == plan
    assert writer.push_schedule(dev, plan).outcome == "unchanged"
    bus.offline.add(dev.id)
    other = dataclasses.replace(plan, makeup_days=())
    assert writer.push_schedule(dev, other).outcome == "failed"
    bus.offline.clear()

    class Garbling(MemoryBus):
        def read_schedule(self, device):
            return ControllerSchedule((), (), ())

    garbled = Writer(site, Garbling(site), store, clock=lambda: T)
    assert garbled.push_schedule(dev, plan).outcome == "failed"
    rows = store.writes(action="schedule")
    assert [w.outcome for w in reversed(rows)] == ["done", "failed", "failed"]
    assert store.held_writes() == []  # schedules are not priority-array writes


def test_a_point_without_a_priority_array_is_restored_at_release(site, store):
    # a gateway's writable analog-value with no priority array
    loose = dataclasses.replace(site, points=tuple(
        dataclasses.replace(p, commandable=False) if p.id == "f1.p1.sp" else p
        for p in site.points))
    bus = MemoryBus(loose)
    bus.set("f1.p1.sp", 24.0)  # what the gateway holds before BEMS
    w = Writer(loose, bus, store, clock=lambda: T)
    r = w.apply(WriteIntent("f1.p1.sp", 26.0, "occupied"))
    assert (r.outcome, bus.value("f1.p1.sp")) == ("done", 26.0) and "replaces 24" in r.error
    assert w.apply(WriteIntent("f1.p1.sp", 26.5, "demand limit")).outcome == "done"
    r = w.release("f1.p1.sp", "strategy", "no longer wanted")
    assert (r.outcome, bus.value("f1.p1.sp")) == ("restored", 24.0)  # the original, not 26
    assert store.held_writes() == [] and w.held == {}
    # nothing of BEMS's to restore: refused, not a silent "released"
    assert w.release("f1.p1.sp", "cli", "x").outcome == "rejected"
    # a write the device refuses leaves nothing to restore either
    bus.refuse.add("f1.p1.sp")
    assert w.apply(WriteIntent("f1.p1.sp", 27.0, "x")).outcome == "rejected"
    assert "f1.p1.sp" not in w.previous


def test_a_crash_while_holding_a_direct_write_restores_at_the_next_start(site, store):
    loose = dataclasses.replace(site, points=tuple(
        dataclasses.replace(p, commandable=False) if p.id == "f2.p2.sp" else p
        for p in site.points))
    bus = MemoryBus(loose)
    bus.set("f2.p2.sp", 23.5)
    first = Writer(loose, bus, store, clock=lambda: T)
    assert first.apply(WriteIntent("f2.p2.sp", 27.0, "x")).ok
    assert first.apply(WriteIntent("f2.p2.sp", 28.0, "y")).ok
    del first  # kill -9
    second = Writer(loose, bus, store, clock=lambda: T)
    assert second.previous == {"f2.p2.sp": 23.5}
    assert [r.outcome for r in second.recover()] == ["restored"]
    assert bus.value("f2.p2.sp") == 23.5 and store.held_writes() == []
