"""Polling: ReadPropertyMultiple in APDU-sized batches, devices concurrently, stale and back-off.

Each device is polled on its own: its own timeout and retry budget, so one dead or slow device
never delays the others. A device that fails is marked stale (its points get a `stale` reading
once) and is polled again after a back-off that doubles up to a limit; meanwhile each cycle
sends it one cheap probe (a single property, in the background: the cycle does not wait for
it), and a device that answers the probe is polled in full at the next cycle, not when its
back-off ends (after a slow spell, a device once went unread for most of a minute). Batches are sized to the device's max APDU; a batch the device cannot
answer in one APDU is split in halves, and a device that rejects ReadPropertyMultiple is read
property by property.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from bems.fieldbus import DeviceHealth, PollResult, mark_stale
from bems.site import Device, Point, Site
from connectors.bacnet.gateway import (
    _TOO_BIG, BacnetError, BacnetGateway, BacnetRefused, DeviceTimeout, chunked, plain,
)

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
_NO_RPM = ("unrecognized-service", "service-request-denied")


def batch_size(max_apdu: int) -> int:
    """Points per ReadPropertyMultiple: about 22 bytes of answer per present value, so that
    each answer fits one APDU. Even a device that segments gets unsegmented batches, sent
    side by side: a segmented answer costs a segment-ACK round trip per window (measured in
    bench/discover.py: a routed 500-point cycle took 0.217 s in batches of 250 segmented,
    0.185 s in batches of 66), and some stacks segment badly."""
    return max(1, min((max_apdu - 16) // 22, 250))


class Poller:
    def __init__(self, site: Site, gateway: BacnetGateway,
                 sink: Callable[[list[tuple]], Any] | None = None,
                 backoff_base_s: float = 5.0, backoff_max_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        site = site.for_protocol("bacnet")  # a mixed site's Modbus devices are not polled here
        self.site, self.gateway, self.sink = site, gateway, sink
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.clock = clock
        self.health = {d.id: DeviceHealth(d.id) for d in site.devices}
        self.on_back: Callable[[str], None] | None = None  # a stale device answers again
        self._probes: dict[str, asyncio.Task] = {}  # device → its probe under way

    def poll(self, sink: Callable[[list[tuple]], Any] | None = None) -> PollResult:
        """One full cycle over every device that is due; readings go to `sink` (or the
        poller's own)."""
        budget = max(d.timeout_s * (d.retries + 1) for d in self.site.devices) + 10
        return self.gateway.call(self.apoll(sink), budget)

    async def apoll(self, sink: Callable[[list[tuple]], Any] | None = None) -> PollResult:
        sink = sink or self.sink
        t0 = time.perf_counter()
        now = dt.datetime.now(UTC).replace(microsecond=0)
        mono = self.clock()
        due = [d for d in self.site.devices if self.health[d.id].due(mono)]
        skipped = tuple(d.id for d in self.site.devices if d not in due)
        for dev in self.site.devices:
            if dev.id in skipped and not (dev.id in self._probes and
                                          not self._probes[dev.id].done()):
                self._probes[dev.id] = asyncio.ensure_future(self._probe(dev))
        results = await asyncio.gather(*(self._device(d) for d in due))
        values: dict[str, tuple[Any, str]] = {}
        rows: list[tuple] = []
        for dev, (vals, error) in zip(due, results):
            h = self.health[dev.id]
            if error is None:
                if h.answered(now):
                    log.info("device %s answers again", dev.id)
                    if self.on_back is not None:
                        self.on_back(dev.id)
                for pid, (v, q) in vals.items():
                    values[pid] = (v, q)
                    rows.append((pid, now, v if isinstance(v, (int, float)) else None, q))
            else:
                first = h.failed(error, self.clock(), self.backoff_base_s, self.backoff_max_s)
                self.gateway.forget(dev.address)
                log.warning("device %s stale: %s", dev.id, error)
                mark_stale(values, rows, self.site.points_of(dev.id), now, first)
        for dev_id in skipped:
            mark_stale(values, rows, self.site.points_of(dev_id), now, False)
        if rows and sink is not None:
            sink(rows)
        return PollResult(now, values, {k: replace(v) for k, v in self.health.items()},
                          time.perf_counter() - t0, skipped)

    async def _probe(self, dev: Device) -> None:
        """One property of a device in back-off; an answer (even an error answer) makes it
        due at the next cycle."""
        points = self.site.points_of(dev.id)
        obj, prop = (points[0].object, points[0].property_name) if points else \
            (f"device,{dev.instance}", "object-name")
        try:
            await self.gateway.aread(dev.address, obj, prop, timeout=dev.timeout_s)
        except BacnetRefused:
            pass  # it answered
        except (BacnetError, asyncio.CancelledError):
            return
        except Exception:  # noqa: BLE001 - a probe never breaks anything
            log.debug("probe of %s failed", dev.id, exc_info=True)
            return
        h = self.health[dev.id]
        if h.state == "stale":
            h.retry_at = 0.0

    async def _device(self, dev: Device) -> tuple[dict[str, tuple[Any, str]], str | None]:
        """Poll one device within its own budget: (values, None) or ({}, error)."""
        h = self.health[dev.id]
        t0 = time.perf_counter()
        points = [p for p in self.site.points_of(dev.id)]
        last = ""
        for _attempt in range(dev.retries + 1):
            try:
                if h.batch == 0:
                    info = await self.gateway.adevice_info(dev.address, dev.timeout_s)
                    h.batch = batch_size(info.max_apdu)
                out: dict[str, tuple[Any, str]] = {}
                if h.rpm:
                    parts = await asyncio.gather(*(self._rpm(dev, list(b))
                                                   for b in chunked(points, h.batch)))
                    for part in parts:
                        out.update(part)
                else:
                    out = await self._single(dev, points)
                h.last_duration_s = time.perf_counter() - t0
                return out, None
            except DeviceTimeout as err:
                last = str(err)
            except BacnetError as err:
                last = str(err)
                break
            except Exception as err:  # noqa: BLE001 - one device's oddity never stops a poll
                log.exception("device %s: unexpected error in the poll", dev.id)
                last = f"unexpected {type(err).__name__}: {err}"[:300]
                break
        h.last_duration_s = time.perf_counter() - t0
        return {}, last or "no answer"

    async def _rpm(self, dev: Device, points: list[Point]) -> dict[str, tuple[Any, str]]:
        h = self.health[dev.id]
        try:
            result = await self.gateway.aread_multiple(
                dev.address, [(p.object, [p.property_name]) for p in points], dev.timeout_s)
        except BacnetRefused as err:
            if err.error_code in _NO_RPM:
                log.info("device %s rejects ReadPropertyMultiple: reading one by one", dev.id)
                h.rpm = False
                return await self._single(dev, points)
            if err.error_code in ("unknown-object", "unknown-property"):
                # a point the device does not have (a typo, a reconfigured controller): that
                # point is bad, the device and its other points are fine
                if len(points) == 1:
                    log.warning("device %s: %s", dev.id, err)
                    return {points[0].id: (None, "bad")}
                half = len(points) // 2
                a, b = await asyncio.gather(self._rpm(dev, points[:half]),
                                            self._rpm(dev, points[half:]))
                return {**a, **b}
            if err.error_code in _TOO_BIG and len(points) > 1:
                half = len(points) // 2
                h.batch = max(1, min(h.batch, half))
                a, b = await asyncio.gather(self._rpm(dev, points[:half]),
                                            self._rpm(dev, points[half:]))
                return {**a, **b}
            raise
        by_obj = {(p.object, p.property_name): p.id for p in points}
        out: dict[str, tuple[Any, str]] = {}
        for obj, prop, value in result:
            pid = by_obj.get((obj, prop))
            if pid is None:
                continue
            if isinstance(value, BacnetRefused):
                out[pid] = (None, "bad")
            else:
                out[pid] = (plain(value), "good")
        for p in points:
            out.setdefault(p.id, (None, "bad"))
        return out

    async def _single(self, dev: Device, points: list[Point]) -> dict[str, tuple[Any, str]]:
        async def one(p: Point) -> tuple[str, tuple[Any, str]]:
            try:
                v = await self.gateway.aread(dev.address, p.object, p.property_name,
                                             timeout=dev.timeout_s)
                return p.id, (plain(v), "good")
            except DeviceTimeout:
                raise
            except BacnetError:  # refused, or an answer the client cannot decode
                return p.id, (None, "bad")
        return dict(await asyncio.gather(*(one(p) for p in points)))


@dataclass
class CovSubscriptions:
    """COV subscriptions for the points that ask for them (`cov = true`). bacpypes3 renews
    each subscription before its lifetime ends; a controller that restarted forgets them
    all, so a device's subscriptions are made again when it announces itself (I-Am) or
    answers the poll again after a gap (`renew`). A point whose device refuses COV is
    polled only (the poll reads every point anyway) and asked again after a back-off.
    Values go to `on_value(point, value, time)`."""

    site: Site
    gateway: BacnetGateway
    on_value: Callable[[str, Any, dt.datetime], None]
    lifetime_s: int = 300
    tasks: dict = field(default_factory=dict)  # point id → its watch task
    refused: dict = field(default_factory=dict)  # point id → why the device said no
    renewals: int = 0
    _renewed_at: dict = field(default_factory=dict)

    def start(self, points: list[str] | None = None) -> int:
        wanted = [p for p in self.site.points if p.cov and (points is None or p.id in points)]
        self.gateway.call(self._start(wanted), 10)
        return len(wanted)

    async def _start(self, points: list[Point]) -> None:
        for p in points:
            self.tasks[p.id] = asyncio.ensure_future(self._watch(p))

    def renew(self, device_id: str) -> None:
        """Subscribe again to every COV point of a device (call on the gateway's loop)."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._renewed_at.get(device_id, -1e9) < 2.0:
            return  # one renewal per announcement, not one per echo
        self._renewed_at[device_id] = loop.time()
        points = [p for p in self.site.points_of(device_id) if p.id in self.tasks]
        if not points:
            return
        self.renewals += 1
        log.info("device %s is back: renewing %d COV subscription(s)", device_id, len(points))
        for p in points:
            self.tasks.pop(p.id).cancel()
            self.refused.pop(p.id, None)
            self.tasks[p.id] = asyncio.ensure_future(self._watch(p))

    def renew_address(self, address: str) -> None:
        for dev in self.site.devices:
            if dev.address == address:
                self.renew(dev.id)

    async def _watch(self, p: Point) -> None:
        from bacpypes3.pdu import Address
        from bacpypes3.primitivedata import ObjectIdentifier

        dev = self.site.device(p.device)
        wait = 5.0
        while True:
            try:
                async with self.gateway.app.change_of_value(
                        Address(dev.address), ObjectIdentifier(p.object),
                        issue_confirmed_notifications=False,
                        lifetime=self.lifetime_s) as scm:
                    self.refused.pop(p.id, None)
                    wait = 5.0
                    while True:
                        prop, value = await scm.get_value()
                        if str(prop) == "present-value":
                            self.on_value(p.id, plain(value), dt.datetime.now(UTC))
            except asyncio.CancelledError:
                raise
            except BaseException as err:  # noqa: BLE001 - bacpypes3 raises BaseException errors
                why = str(getattr(err, "errorCode", "") or getattr(err, "reason", "") or
                          type(err).__name__)
                if p.id not in self.refused:
                    log.warning("COV %s refused or failed (%s): polled only, asking again "
                                "in %.0f s", p.id, why, wait)
                self.refused[p.id] = why
                await asyncio.sleep(wait)
                wait = min(wait * 2, 600.0)

    def stop(self) -> None:
        if self.gateway.loop is None:
            return

        async def cancel() -> None:
            tasks = list(self.tasks.values())
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.gateway.call(cancel(), 10)
        self.tasks.clear()
