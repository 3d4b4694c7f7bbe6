"""Forecasts and the fitted models behind them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Iterable

from bems.storage.common import from_epoch, to_epoch


class Forecasts:
    """Mixin of `Store`."""

    # --- forecasts and models -------------------------------------------------------------

    def save_forecast(self, meter: str, issued_at: dt.datetime | int, model: str,
                      rows: Iterable[tuple[dt.datetime | int, float]]) -> int:
        issued = to_epoch(issued_at)
        data = [(meter, issued, to_epoch(ts), float(v), model) for ts, v in rows]
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO forecasts (meter, issued_at, ts, yhat, model) "
                "VALUES (?, ?, ?, ?, ?)", data)
        return len(data)

    def latest_forecasts(self, meter: str | None = None) -> dict[str, list[dict]]:
        """The most recent forecast issued for each meter: {meter: [{ts, yhat, model, ...}]}."""
        where, args = "", []
        if meter is not None:
            where, args = "WHERE meter = ?", [meter]
        out: dict[str, list[dict]] = {}
        for m, issued in self.db.execute(
                f"SELECT meter, max(issued_at) FROM forecasts {where} GROUP BY meter", args):
            cur = self.db.execute("SELECT ts, yhat, model FROM forecasts WHERE meter = ? AND "
                                  "issued_at = ? ORDER BY ts", [m, issued])
            out[m] = [{"ts": from_epoch(ts), "yhat": y, "model": model,
                       "issued_at": from_epoch(issued)} for ts, y, model in cur]
        return out

    def forecast_for(self, meter: str, start: dt.datetime | int,
                     end: dt.datetime | int) -> list[tuple[dt.datetime, float]]:
        """What was forecast for each hour in [start, end) before it came: for every hour,
        the value of the latest forecast issued at or before it (a baseline that never saw
        the hour it judges)."""
        cur = self.db.execute(
            "SELECT f.ts, f.yhat FROM forecasts f WHERE f.meter = ? AND f.ts >= ? AND f.ts < ? "
            "AND f.issued_at = (SELECT max(g.issued_at) FROM forecasts g WHERE "
            "g.meter = f.meter AND g.ts = f.ts AND g.issued_at <= f.ts) ORDER BY f.ts",
            [meter, to_epoch(start), to_epoch(end)])
        return [(from_epoch(ts), y) for ts, y in cur if y is not None]

    def save_model(self, meter: str, name: str, payload: str, scores: dict,
                   when: dt.datetime | int, selected: bool = True) -> int:
        with self.db.atomic():
            if selected:
                self.db.execute("UPDATE models SET selected = 0 WHERE meter = ?", [meter])
            cur = self.db.execute("INSERT INTO models (meter, name, created_at, payload, scores, "
                                  "selected) VALUES (?, ?, ?, ?, ?, ?)",
                                  [meter, name, to_epoch(when), payload, json.dumps(scores),
                                   1 if selected else 0])
        return cur.lastrowid

    def selected_model(self, meter: str) -> dict | None:
        row = self.db.execute("SELECT name, created_at, payload, scores FROM models WHERE "
                              "meter = ? AND selected = 1 ORDER BY id DESC LIMIT 1",
                              [meter]).fetchone()
        if row is None:
            return None
        return {"name": row[0], "created_at": from_epoch(row[1]), "payload": row[2],
                "scores": json.loads(row[3] or "{}")}
