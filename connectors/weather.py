"""The outdoor temperature forecast's provider over HTTP (the site file's [weather] table):
one bounded GET (`connectors.http`: the whole request within `timeout_s`, 2 MB at most, no
redirect to another address), then the core's checks of the reply
(`bems.predictive.weather.parse`)."""

from __future__ import annotations

from bems.predictive.weather import MAX_BYTES, WeatherError, parse
from bems.site import Weather
from connectors.http import HttpError, get


def fetch(source: Weather) -> list[tuple[int, float]]:
    """(UTC epoch, °C) hourly from the provider; raises WeatherError."""
    try:
        body = get(source.url, source.timeout_s, MAX_BYTES,
                   {"User-Agent": "bems", "Accept": "application/json"})
    except HttpError as exc:
        if exc.status is not None and exc.status not in (301, 302, 303, 307, 308):
            raise WeatherError(f"weather provider answered HTTP {exc.status}") from None
        raise WeatherError(f"weather provider: {exc}") from None
    return parse(body)
