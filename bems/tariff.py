"""Electricity cost under the site's dated tariffs (flat or time-of-use), VAT kept apart."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable

from bems.errors import BemsError
from bems.site import Site, Tariff


@dataclass(frozen=True)
class Cost:
    kwh: float
    before_vat_vnd: float
    vat_vnd: float
    by_band: dict[str, tuple[float, float]]  # band → (kWh, VND before VAT)

    @property
    def total_vnd(self) -> float:
        return self.before_vat_vnd + self.vat_vnd


def band(tariff: Tariff, local: dt.datetime) -> str:
    """The time-of-use band of a local time ('flat' for a flat tariff)."""
    if tariff.kind == "flat":
        return "flat"
    t = local.time()
    for p in tariff.periods:
        end = p.end if p.end != dt.time(0) else dt.time.max
        if local.weekday() in p.days and p.start <= t < end:
            return p.band
    return "normal"


def price(tariff: Tariff, b: str) -> float:
    if tariff.kind == "flat":
        return float(tariff.price_vnd_per_kwh)
    return float(dict(tariff.prices)[b])


def cost(site: Site, energy: Iterable[tuple[dt.datetime, float]]) -> Cost:
    """Cost of (start of interval, kWh) pairs; each interval is priced at its start, by the
    tariff in force on that local day."""
    tz = site.tz
    kwh = before = vat = 0.0
    bands: dict[str, list[float]] = {}
    for when, e in energy:
        local = when.astimezone(tz).replace(tzinfo=None)
        tariff = site.tariff_on(local.date())
        if tariff is None:
            raise BemsError(f"no tariff in force on {local.date()} (site file [[tariffs]])")
        b = band(tariff, local)
        money = e * price(tariff, b)
        kwh += e
        before += money
        vat += money * tariff.vat
        acc = bands.setdefault(b, [0.0, 0.0])
        acc[0] += e
        acc[1] += money
    return Cost(kwh, before, vat, {k: (v[0], v[1]) for k, v in bands.items()})
