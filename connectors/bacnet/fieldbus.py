"""The production field bus: BACnet/IP through bacpypes3 (`bems.fieldbus.FieldBus`).

One `BacnetGateway` thread owns the bacpypes3 application; polling, COV, trend-log backfill and
controller schedules are the connector's modules over it. The runtime sees only this object.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bems.fieldbus import ControllerSchedule, OnValue, PollResult, Sink
from bems.site import Device, Site
from connectors.bacnet import schedules, trends
from connectors.bacnet.common import plain
from connectors.bacnet.gateway import BacnetError, BacnetGateway, gateway_for
from connectors.bacnet.poller import CovSubscriptions, Poller


class BacnetFieldBus:
    def __init__(self, site: Site, port: int | None = None, interface: str | None = None,
                 gateway: BacnetGateway | None = None, cov_lifetime_s: int = 300):
        site = site.for_protocol("bacnet")  # a mixed site's other devices are not BACnet's
        self.site = site
        self.gateway = gateway or gateway_for(site.bacnet, port, interface)
        self.poller = Poller(site, self.gateway)
        self.cov: CovSubscriptions | None = None
        self.cov_lifetime_s = cov_lifetime_s
        # a controller that restarted has forgotten its COV subscriptions: it says so with
        # an I-Am at power-up, or by answering the poll again after a gap
        self.poller.on_back = lambda dev: self.cov.renew(dev) if self.cov else None
        self.gateway.on_i_am.append(lambda addr: self.cov.renew_address(addr)
                                    if self.cov else None)

    def start(self) -> None:
        self.gateway.start()

    def stop(self) -> None:
        self.unsubscribe()
        self.gateway.stop()

    # --- what the writer needs ---------------------------------------------------------------

    def write(self, address: str, obj: str, value: Any, priority: int | None,
              timeout: float | None = None) -> None:
        self.gateway.write(address, obj, value, priority, timeout=timeout)

    def priority_array(self, address: str, obj: str,
                       timeout: float | None = None) -> dict[int, Any]:
        return self.gateway.priority_array(address, obj, timeout=timeout)

    def read(self, address: str, obj: str, prop: str = "present-value",
             timeout: float | None = None) -> Any:
        return plain(self.gateway.read(address, obj, prop, timeout=timeout))

    def read_clock(self, device: Device) -> dt.datetime:
        obj = f"device,{device.instance}"
        d = self.gateway.read(device.address, obj, "local-date", timeout=device.timeout_s)
        t = self.gateway.read(device.address, obj, "local-time", timeout=device.timeout_s)
        try:
            return dt.datetime(d[0] + 1900, d[1], d[2], t[0], t[1], t[2])
        except (TypeError, ValueError, IndexError) as err:  # 255 = unspecified, etc.
            raise BacnetError(f"{device.id}: local date/time unreadable ({d!r} {t!r})") from err

    def sync_clock(self, device: Device, local: dt.datetime) -> None:
        from bacpypes3.apdu import TimeSynchronizationRequest
        from bacpypes3.basetypes import DateTime
        from bacpypes3.pdu import Address
        from bacpypes3.primitivedata import Date, Time

        async def send() -> None:
            apdu = TimeSynchronizationRequest(
                time=DateTime(date=Date(local.strftime("%Y-%m-%d")),
                              time=Time(local.strftime("%H:%M:%S.00"))),
                destination=Address(device.address))
            await self.gateway.app.request(apdu)

        self.gateway.call(send(), 5)

    def write_schedule(self, device: Device, schedule: ControllerSchedule) -> None:
        schedules.write(self.gateway, device, schedule)

    def read_schedule(self, device: Device) -> ControllerSchedule:
        return schedules.read(self.gateway, device)

    # --- what the runtime needs --------------------------------------------------------------

    def poll(self, sink: Sink | None = None) -> PollResult:
        return self.poller.poll(sink)

    def subscribe(self, on_value: OnValue) -> int:
        self.unsubscribe()
        self.cov = CovSubscriptions(self.site, self.gateway, on_value, self.cov_lifetime_s)
        return self.cov.start()

    def unsubscribe(self) -> None:
        if self.cov is not None and self.gateway.loop is not None:
            self.cov.stop()
        self.cov = None

    def backfill(self, since: dt.datetime, sink: Sink) -> dict[str, int]:
        if not any(p.trend_log for p in self.site.points):
            return {}
        return trends.backfill(self.site, self.gateway, sink, since)
