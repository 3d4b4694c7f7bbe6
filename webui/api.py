"""The read API under /api/v1/ (flask-smorest: the OpenAPI 3 description at
/api/v1/openapi.json is generated from these routes and schemas).

Every call needs `Authorization: Bearer <token>` (`bems token create`); a session cookie is not
a token. Times are ISO 8601 with their offset (a time without one is the site's local time);
units are SI. Long spans are paged: a page holds at most `limit` items and says where the next
starts (`next`, also a `Link` header). `Accept: text/csv` gives CSV instead of JSON for series.
Errors are JSON `{code, status, message, errors}`; a token is rate-limited per minute, and its
use counted per day.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import threading
import time
from collections import deque
from urllib.parse import urlencode

import marshmallow as ma
from flask import Response, g, jsonify, request
from flask_smorest import Api, Blueprint, abort
from werkzeug.exceptions import HTTPException

from bems import tokens
from bems.metering import hourly_kwh
from bems.status import alarms, zone_rows
from webui import ctx, now, store

bp = Blueprint("api", __name__, url_prefix="/api/v1",
               description="BEMS's data, read-only, for an operations centre, spreadsheets "
                           "and dashboards (Grafana).")
RATE_PER_MIN = 600
MAX_SPAN_DAYS = 400
RES = {"15m": "15min", "hour": "hour", "day": "day"}


class _Api(Api):
    """JSON errors for the API's routes only (below): the web UI keeps its own pages."""

    def _register_error_handlers(self):
        pass


@bp.errorhandler(HTTPException)
def _error(err: HTTPException):
    """{code, status, message, errors} and the headers `abort` was given."""
    data = getattr(err, "data", None) or {}
    payload = {"code": err.code, "status": err.name,
               "message": data.get("message") or err.description}
    errors = data.get("errors") or data.get("messages")
    if errors:
        payload["errors"] = errors
    return jsonify(payload), err.code, data.get("headers", {})


def init_api(app) -> None:
    app.config.update({"API_TITLE": "BEMS read API", "API_VERSION": "v1",
                       "OPENAPI_VERSION": "3.0.3", "OPENAPI_URL_PREFIX": "/api/v1",
                       "OPENAPI_JSON_PATH": "openapi.json"})
    api = _Api(app, spec_kwargs={"components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearer": []}]})
    api.register_blueprint(bp)

    @app.errorhandler(404)
    def _not_found(err):
        if request.path.startswith("/api/"):
            return jsonify({"code": 404, "status": "Not Found",
                            "message": "no such API path"}), 404
        return err


# --- authentication and rate ------------------------------------------------------------------

_calls: dict[str, deque] = {}
_calls_lock = threading.Lock()


@bp.before_request
def _authenticate():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(401, message="a bearer token is needed: Authorization: Bearer <token> "
                           "(bems token create)", headers={"WWW-Authenticate": "Bearer"})
    t = now()
    record = tokens.check(store(), token.strip(), t)
    if record is None:
        abort(401, message="the token is not valid, has expired or was revoked",
              headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    mono = time.monotonic()
    with _calls_lock:
        q = _calls.setdefault(record["name"], deque())
        while q and mono - q[0] > 60:
            q.popleft()
        if len(q) >= RATE_PER_MIN:
            abort(429, message=f"at most {RATE_PER_MIN} calls a minute per token",
                  headers={"Retry-After": "60"})
        q.append(mono)
    store().count_token_use(record["name"], t.astimezone(ctx()["site"].tz).date().isoformat(), t)
    g.token = record


# --- parameters -------------------------------------------------------------------------------

def _time(text: str | None, default: dt.datetime, name: str) -> dt.datetime:
    if not text:
        return default
    try:  # an unescaped "+" of an offset arrives as a space
        t = dt.datetime.fromisoformat(text.replace(" ", "+"))
    except ValueError:
        abort(400, message=f"{name} must be an ISO 8601 time such as 2026-07-06T08:00+07:00",
              errors={name: [text[:60]]})
    if not 2000 <= t.year <= 2100:
        abort(400, message=f"{name} must lie in 2000..2100", errors={name: [text[:60]]})
    return t if t.tzinfo else t.replace(tzinfo=ctx()["site"].tz)


def _span(args: dict, default_days: float = 1.0) -> tuple[dt.datetime, dt.datetime]:
    end = _time(args.get("to"), now(), "to")
    start = _time(args.get("from"), end - dt.timedelta(days=default_days), "from")
    if end <= start:
        abort(400, message="from must be before to")
    if end - start > dt.timedelta(days=MAX_SPAN_DAYS):
        abort(400, message=f"at most {MAX_SPAN_DAYS} days at a time")
    return start, end


class SpanArgs(ma.Schema):
    from_ = ma.fields.String(data_key="from", validate=ma.validate.Length(max=40),
                             metadata={"description": "start (ISO 8601; default: a day before to)"})
    to = ma.fields.String(validate=ma.validate.Length(max=40),
                          metadata={"description": "end, exclusive (ISO 8601; default: now)"})
    limit = ma.fields.Integer(load_default=10_000, validate=ma.validate.Range(1, 50_000))


class ReadingsArgs(SpanArgs):
    point = ma.fields.String(required=True, validate=ma.validate.Length(1, 200))
    res = ma.fields.String(load_default="raw",
                           validate=ma.validate.OneOf(("raw", "15m", "hour", "day")))


class EnergyArgs(SpanArgs):
    meter = ma.fields.String(required=True, validate=ma.validate.Length(1, 200))
    res = ma.fields.String(load_default="hour", validate=ma.validate.OneOf(("hour", "day")))


class WritesArgs(SpanArgs):
    point = ma.fields.String(validate=ma.validate.Length(1, 200))


class FaultsArgs(ma.Schema):
    status = ma.fields.String(load_default="active", validate=ma.validate.OneOf(
        ("active", "open", "acknowledged", "closed", "all")))
    days = ma.fields.Integer(load_default=30, validate=ma.validate.Range(1, 400))


class ForecastArgs(ma.Schema):
    meter = ma.fields.String(validate=ma.validate.Length(1, 200))


def _renamed(args: dict) -> dict:
    """The parsed query (webargs: a bad one is a 422 before the view) with the spec's names."""
    out = dict(args)
    if "from_" in out:
        out["from"] = out.pop("from_")
    return out


def _iso(t: dt.datetime | None) -> str | None:
    return t.astimezone(ctx()["site"].tz).isoformat() if t is not None else None


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
        else None


def _series(meta: dict, items: list[dict], fields: tuple[str, ...],
            next_from: dt.datetime | None) -> Response:
    """A page of a series as JSON or (Accept: text/csv) CSV, with the next page's link."""
    link = None
    if next_from is not None:
        q = {k: v for k, v in request.args.items() if k != "from"}
        q["from"] = next_from.astimezone(ctx()["site"].tz).isoformat()
        link = f"{request.base_url}?{urlencode(q)}"
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    if best == "text/csv" and request.accept_mimetypes["text/csv"] > \
            request.accept_mimetypes["application/json"]:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(fields)
        w.writerows([it.get(f) for f in fields] for it in items)
        resp = Response(buf.getvalue(), mimetype="text/csv")
    else:
        resp = jsonify({**meta, "items": items, "next": link})
    if link:
        resp.headers["Link"] = f'<{link}>; rel="next"'
    return resp


# --- endpoints --------------------------------------------------------------------------------

class PointSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.String()
    unit = ma.fields.String(allow_none=True)
    device = ma.fields.String()
    zone = ma.fields.String(allow_none=True)
    writable = ma.fields.Boolean()


@bp.route("/points")
@bp.response(200, PointSchema(many=True))
def points():
    """Every point of the site: id, name, kind, unit, device and zone."""
    site = ctx()["site"]
    zone_of = {}
    for z in site.zones:
        for pid in (z.temperature, z.cooling_setpoint, z.ac_status, z.ac_mode, z.lighting,
                    z.lighting_level, z.occupancy):
            if pid:
                zone_of[pid] = z.id
    return [{"id": p.id, "name": p.name, "kind": p.kind, "unit": p.unit or None,
             "device": p.device, "zone": zone_of.get(p.id), "writable": p.writable}
            for p in site.points]


@bp.route("/readings")
@bp.arguments(ReadingsArgs, location="query")
@bp.response(200, description="`{point, res, unit, items: [{time, value, quality}] or "
                              "[{time, mean, min, max, n}], next}`")
def readings(a):
    """A point's readings: raw, or 15-minute, hourly or daily means (with min, max, count)."""
    a = _renamed(a)
    site = ctx()["site"]
    try:
        p = site.point(a["point"])
    except KeyError:
        abort(404, message="no such point", errors={"point": [a["point"][:60]]})
    start, end = _span(a)
    limit = a["limit"]
    meta = {"point": p.id, "res": a["res"], "unit": p.unit or None}
    if a["res"] == "raw":
        rows = store().readings(p.id, start, end)
        page = rows[:limit]
        items = [{"time": _iso(t), "value": _num(v), "quality": q} for t, v, q in page]
        nxt = page[-1][0] + dt.timedelta(seconds=1) if len(rows) > limit else None
        return _series(meta, items, ("time", "value", "quality"), nxt)
    rows = list(store().rollups(RES[a["res"]], [p.id], start, end))
    page = rows[:limit]
    items = [{"time": _iso(r["bucket"]), "mean": _num(r["mean"]), "min": _num(r["min"]),
              "max": _num(r["max"]), "n": r["n"]} for r in page]
    nxt = rows[limit]["bucket"] if len(rows) > limit else None
    return _series(meta, items, ("time", "mean", "min", "max", "n"), nxt)


@bp.route("/energy")
@bp.arguments(EnergyArgs, location="query")
@bp.response(200, description="`{meter, res, unit: kWh, items: [{time, kwh}], next}`")
def energy(a):
    """A meter's energy per hour, or per local day (hours after a gap are left out)."""
    a = _renamed(a)
    site = ctx()["site"]
    meter = next((m for m in site.meters if m.id == a["meter"]), None)
    if meter is None:
        abort(404, message="no such meter", errors={"meter": [a["meter"][:60]]})
    start, end = _span(a, default_days=7)
    hours = sorted(hourly_kwh(store(), meter, start, end).items())
    if a["res"] == "day":
        days: dict[dt.date, float] = {}
        for t, kwh in hours:
            d = t.astimezone(site.tz).date()
            days[d] = days.get(d, 0.0) + kwh
        rows = [(dt.datetime.combine(d, dt.time(), tzinfo=site.tz), v)
                for d, v in sorted(days.items())]
    else:
        rows = hours
    page = rows[:a["limit"]]
    items = [{"time": _iso(t), "kwh": _num(v)} for t, v in page]
    nxt = rows[a["limit"]][0] if len(rows) > a["limit"] else None
    return _series({"meter": meter.id, "res": a["res"], "unit": "kWh"}, items, ("time", "kwh"),
                   nxt)


@bp.route("/zones")
@bp.response(200, description="`[{id, name, temperature, setpoint, ac, light, occupied, "
                              "out_of_band, commanded_by, reason}]`")
def zones():
    """Each zone now: temperature, setpoint, AC and lights, and who commands its setpoint."""
    site = ctx()["site"]
    out = []
    for r in zone_rows(site, store(), now()):
        z = r["zone"]
        out.append({"id": z.id, "name": z.name, "temperature": _num(r["temp"]),
                    "setpoint": _num(r["setpoint"]), "ac": _num(r["ac"]),
                    "light": _num(r["light"]), "occupied": r["occupied"],
                    "out_of_band": r["out_of_band"], "commanded_by": r["who"],
                    "reason": str(r["reason"]) if r["reason"] else None})
    return jsonify(out)


@bp.route("/alarms")
@bp.response(200, description="`[{key, kind, severity, target, value, acknowledged}]`")
def active_alarms():
    """The alarms active now, with who acknowledged them."""
    out = [{"key": a["key"], "kind": a["kind"], "severity": a["severity"],
            "target": a["target"], "value": _num(a["value"]), "acknowledged": a["ack"]}
           for a in alarms(ctx()["site"], store(), now())]
    return jsonify(out)


@bp.route("/faults")
@bp.arguments(FaultsArgs, location="query")
@bp.response(200, description="`[{id, rule, target, first, last, status, kwh_per_day, "
                              "vnd_per_day, discomfort_kh}]` most costly first")
def faults(a):
    """Faults the rules found in the last `days`, most costly first."""
    status = None if a["status"] == "all" else a["status"]
    rows = store().faults(since=now() - dt.timedelta(days=a["days"]), status=status)
    return jsonify([{"id": f["id"], "rule": f["rule"], "target": f["target"],
                     "first": _iso(f["first"]), "last": _iso(f["last"]), "status": f["status"],
                     "kwh_per_day": _num(f["kwh_per_day"]),
                     "vnd_per_day": _num(f["vnd_per_day"]),
                     "discomfort_kh": _num(f["discomfort_kh"])} for f in rows])


@bp.route("/writes")
@bp.arguments(WritesArgs, location="query")
@bp.response(200, description="`{items: [{time, point, action, value, priority, source, "
                              "reason, outcome, error}], next}` newest first")
def writes(a):
    """The ledger: every attempt to write a device, newest first."""
    a = _renamed(a)
    start, end = _span(a, default_days=7)
    rows = store().writes(point=a.get("point"), since=start, until=end, limit=a["limit"] + 1)
    page = rows[:a["limit"]]
    items = [{"time": _iso(w.ts), "point": w.point, "action": w.action, "value": w.value,
              "priority": w.priority, "source": w.source,
              "reason": str(w.reason) if w.reason else None, "outcome": w.outcome,
              "error": w.error} for w in page]
    link = None
    if len(rows) > a["limit"]:  # newest first: the next page ends where this one ended
        q = {k: v for k, v in request.args.items() if k != "to"}
        q["to"] = _iso(page[-1].ts)
        link = f"{request.base_url}?{urlencode(q)}"
    resp = jsonify({"items": items, "next": link})
    if link:
        resp.headers["Link"] = f'<{link}>; rel="next"'
    return resp


@bp.route("/forecasts")
@bp.arguments(ForecastArgs, location="query")
@bp.response(200, description="`{METER: [{time, kw, model, issued_at}]}` the latest forecast "
                              "of each meter")
def forecasts(a):
    """The latest load forecast of each meter (or of one)."""
    site = ctx()["site"]
    if a.get("meter") and a["meter"] not in {m.id for m in site.meters}:
        abort(404, message="no such meter", errors={"meter": [a["meter"][:60]]})
    out = {m: [{"time": _iso(r["ts"]), "kw": _num(r["yhat"]), "model": r["model"],
                "issued_at": _iso(r["issued_at"])} for r in rows]
           for m, rows in store().latest_forecasts(a.get("meter")).items()}
    return jsonify(out)
