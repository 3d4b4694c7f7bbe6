"""Trend-log backfill: what a device logged while BEMS was not polling, read with ReadRange."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Callable

from bems.site import Site
from connectors.bacnet.gateway import BacnetError, BacnetGateway

log = logging.getLogger(__name__)


def backfill(site: Site, gw: BacnetGateway, sink: Callable[[list[tuple]], Any],
             since: dt.datetime, until: dt.datetime | None = None,
             page: int = 40) -> dict[str, int]:
    """Read every trend-logged point's records after `since` (aware) up to `until` and hand
    them to the sink as readings. Devices keep local time (the site's zone). Returns the count
    per point; a device that does not answer is skipped and logged, the others go on."""
    tz = site.tz
    start = since.astimezone(tz).replace(tzinfo=None)
    stop = until.astimezone(tz).replace(tzinfo=None) if until else None

    async def one(point) -> tuple[str, int]:
        dev = site.device(point.device)
        after, n = start, 0
        while True:
            try:
                recs = await gw.aread_range_after(dev.address, point.trend_log, after, page,
                                                  dev.timeout_s)
            except BacnetError as err:
                log.warning("backfill %s from %s: %s", point.id, dev.id, err)
                return point.id, n
            rows = [(point.id, when.replace(tzinfo=tz), v, "good") for when, v in recs
                    if isinstance(v, float) and (stop is None or when <= stop)]
            if rows:
                sink(rows)
                n += len(rows)
            if len(recs) < page or (stop is not None and recs and recs[-1][0] >= stop):
                return point.id, n
            after = recs[-1][0]

    async def run() -> dict[str, int]:
        pts = [p for p in site.points if p.trend_log]
        return dict(await asyncio.gather(*(one(p) for p in pts)))

    return gw.call(run(), 300)
