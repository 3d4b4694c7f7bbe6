"""Topic layout and payload schema, version 1 — shared by the edge publisher and the ingest.

Topics: ``bems/v1/<site>/<kind>`` where ``<site>`` is the site id (lower-case letters, digits
and ``-``, at most 40) and ``<kind>`` one of `KINDS`. Every payload is one JSON object, UTF-8,
at most `MAX_PAYLOAD` bytes, with the envelope

    {"v": 1, "site": "<site>", "box": "<outbox id>", "seq": <int>, "sent": <epoch s>, ...}

``box`` names the site's outbox (16 hex digits drawn when it was made: a reinstalled BEMS has a
new one) and ``seq`` counts up from 1 in it without gaps (the outbox row id), so the receiver
can count what it never got; the same (box, seq) arriving twice is a replay. The body per
kind:

- ``readings`` — one device over one interval: ``{"dev": "<device>", "t0": <epoch s>,
  "res": "raw"|"15m", "p": {"<point>": [[<offset s>, <value or null>], ...]}}``; offsets are
  from ``t0``, at most `MAX_SAMPLES` samples in a message.
- ``energy`` — meters' energy per 15 minutes: ``{"t0": <epoch s>, "step": 900,
  "m": {"<meter>": [<kWh or null>, ...]}}``.
- ``faults`` — faults that changed: ``{"faults": [{"id", "rule", "target", "status",
  "first", "last", "kwh_per_day", "vnd_per_day"}]}``.
- ``ledger`` — one local day of the write ledger: ``{"day": "YYYY-MM-DD", "writes",
  "failed", "released", "held", "below_floor"}``.
- ``monthly`` — one month's figures: ``{"month": "YYYY-MM", "kwh", "kwh_ac", "vnd",
  "peak_kw", "coverage", "hours_below_25"}``.
- ``site`` — the registry entry: ``{"name", "timezone", "floor_area_m2", "staff",
  "organisation", "meters": [{"id", "name", "measures", "parent"}], "points": <int>,
  "outdoor": "<point>" or null}`` (``outdoor``, optional: the point of the outdoor
  temperature among its readings, which the city's forecasts of its load use).

Numbers must be finite and within each field's range; text is bounded, printable, and holds
nothing PostgreSQL refuses (no NUL, no lone surrogate); dates are real dates in 2000-2100; a
time zone is one the tz database knows; with the receiver's clock (`now`), nothing may be
stamped more than `FUTURE_S` ahead of it, and readings not more than `READINGS_PAST_S` behind.
A message that breaks any rule is refused whole. This module is the one place those rules
live: the centre checks what it queues with them (`check`) and `bems check-config` refuses a
site file whose messages the city would refuse.

The city answers on ``bems/v1/<site>/ack`` with ``{"v": 1, "box": "<outbox id>", "upto": <int>}``
once everything of that outbox up to ``upto`` is committed in its store (no gap below it). Only
then does a site mark those messages sent: a broker that restarts, crashes or loses its queue
costs a resend, never a message. A centre may read its own ``ack`` topic and nothing else.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

VERSION = 1
PREFIX = f"bems/v{VERSION}"
KINDS = ("readings", "energy", "faults", "ledger", "monthly", "site")
MAX_PAYLOAD = 256 * 1024
MAX_SAMPLES = 20_000
MAX_TEXT = 200
SITE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
RESERVED = ("ingest",)  # names of the city's own clients on the broker, never a centre's
BOX_RE = re.compile(r"[0-9a-f]{16}")
ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
VALUE_LIMIT = 1e12  # any reading; beyond is a broken sensor or a hostile sender
EPOCH_RANGE = (946_684_800, 4_102_444_800)  # 2000 … 2100
FUTURE_S = 86_400  # a site's clock a day ahead at most (time zones, a drifting clock)
READINGS_PAST_S = 400 * 86_400  # readings: the retention of a site's raw data
ENERGY_MAX_KWH = 1e7  # one meter's 15 minutes


class PayloadError(ValueError):
    """A message that breaks the schema; `code` names the rule (counted by the ingest)."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


ACK = "ack"


def topic(site: str, kind: str) -> str:
    return f"{PREFIX}/{site}/{kind}"


def encode_ack(box: str, upto: int) -> bytes:
    return encode({"v": VERSION, "box": box, "upto": upto})


def decode_ack(payload: bytes) -> tuple[str, int] | None:
    """(box, upto) of the city's confirmation, or None if it is not one."""
    if len(payload) > 200:
        return None
    try:
        d = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except (PayloadError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(d, dict) or d.get("v") != VERSION:
        return None
    box, upto = d.get("box"), d.get("upto")
    if isinstance(box, str) and BOX_RE.fullmatch(box) and _int(upto, 0, 2**62):
        return box, upto
    return None


def site_ok(site: Any) -> bool:
    return isinstance(site, str) and SITE_RE.fullmatch(site) is not None \
        and not site.startswith(RESERVED)


def parse_topic(t: str) -> tuple[str, str]:
    parts = t.split("/")
    if len(parts) != 4 or "/".join(parts[:2]) != PREFIX or not site_ok(parts[2]) \
            or parts[3] not in KINDS:
        raise PayloadError("topic", t[:120])
    return parts[2], parts[3]


def encode(body: dict) -> bytes:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return data.encode("utf-8")


@dataclass(frozen=True)
class Message:
    site: str
    kind: str
    box: str
    seq: int
    sent: int
    body: dict


def _reject_constant(name: str) -> float:
    raise PayloadError("number", name)  # NaN, Infinity, -Infinity


def envelope(topic_name: str, payload: bytes) -> tuple[str, str, int] | None:
    """(site of the topic, box, seq) of a message, whatever else is wrong with it, or None:
    what a refused message is recorded under, so the site's confirmations move past it."""
    try:
        site, _kind = parse_topic(topic_name)
        if len(payload) > MAX_PAYLOAD:
            return None
        body = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except (PayloadError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    box, seq = body.get("box"), body.get("seq")
    if isinstance(box, str) and BOX_RE.fullmatch(box) and _int(seq, 1, 2**62):
        return site, box, seq
    return None


def decode(topic_name: str, payload: bytes, now: int | None = None) -> Message:
    """Check a message from the broker against version 1; raise PayloadError if it breaks it.
    With `now` (epoch s, the receiver's clock) its times are checked against it too."""
    site, kind = parse_topic(topic_name)
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError("oversized", f"{len(payload)} bytes")
    try:
        body = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except PayloadError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise PayloadError("json", str(err)[:80]) from None
    if not isinstance(body, dict):
        raise PayloadError("json", "not an object")
    if body.get("v") != VERSION:
        raise PayloadError("version", repr(body.get("v"))[:20])
    if body.get("site") != site:
        raise PayloadError("site_mismatch", f"{str(body.get('site'))[:40]!r} under {site!r}")
    seq, sent, box = body.get("seq"), body.get("sent"), body.get("box")
    if not _int(seq, 1, 2**62) or not _int(sent, *EPOCH_RANGE) \
            or not (isinstance(box, str) and BOX_RE.fullmatch(box)):
        raise PayloadError("envelope", "box, seq or sent")
    check(kind, body, now)
    return Message(site, kind, box, seq, sent, body)


def check(kind: str, body: dict, now: int | None = None) -> None:
    """The body's rules for its kind (and, with `now`, its times); PayloadError if broken."""
    if kind not in _CHECKS:
        raise PayloadError("topic", kind[:40])
    _CHECKS[kind](body)
    if now is not None:
        _WHEN.get(kind, lambda b, n: None)(body, now)


def _int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _num(v: Any, lo: float = -VALUE_LIMIT, hi: float = VALUE_LIMIT) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
        and lo <= v <= hi


def _text(v: Any, limit: int = MAX_TEXT) -> bool:
    """Bounded text PostgreSQL can store: no NUL or other control character, no lone
    surrogate (JSON's "\\ud800" decodes to one; UTF-8 cannot hold it)."""
    return isinstance(v, str) and len(v) <= limit and _PRINTABLE.fullmatch(v) is not None


_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f-\x9f\ud800-\udfff]*")


def zone_ok(v: Any) -> bool:
    """A time zone the tz database knows (PostgreSQL's `AT TIME ZONE` refuses others)."""
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z]+(?:/[A-Za-z0-9_+-]+){0,2}", v):
        return False
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _date(v: Any, month_only: bool = False) -> bool:
    import datetime as dt

    if not isinstance(v, str) or not (_MONTH_RE if month_only else _DAY_RE).fullmatch(v):
        return False
    try:
        d = dt.date.fromisoformat(v + "-01" if month_only else v)
    except ValueError:  # 2026-02-31
        return False
    return 2000 <= d.year <= 2100


def _ident(v: Any) -> bool:
    return isinstance(v, str) and ID_RE.fullmatch(v) is not None


def _need(cond: bool, code: str, detail: str = "") -> None:
    if not cond:
        raise PayloadError(code, detail)


def _readings(b: dict) -> None:
    _need(_ident(b.get("dev")), "field", "dev")
    _need(_int(b.get("t0"), *EPOCH_RANGE), "field", "t0")
    _need(b.get("res") in ("raw", "15m"), "field", "res")
    pts = b.get("p")
    _need(isinstance(pts, dict) and 0 < len(pts) <= 2000, "field", "p")
    n = 0
    for point, samples in pts.items():
        _need(_ident(point), "field", "point id")
        _need(isinstance(samples, list), "field", "samples")
        n += len(samples)
        _need(n <= MAX_SAMPLES, "oversized", "samples")
        for s in samples:
            _need(isinstance(s, list) and len(s) == 2 and _int(s[0], 0, 86_400 * 31)
                  and (s[1] is None or _num(s[1])), "value", point)


def _energy(b: dict) -> None:
    _need(_int(b.get("t0"), *EPOCH_RANGE), "field", "t0")
    _need(b.get("step") == 900, "field", "step")
    m = b.get("m")
    _need(isinstance(m, dict) and 0 < len(m) <= 500, "field", "m")
    for meter, vals in m.items():
        _need(_ident(meter), "field", "meter id")
        _need(isinstance(vals, list) and len(vals) <= 96 * 31, "field", "kwh")
        for v in vals:
            _need(v is None or _num(v, 0, ENERGY_MAX_KWH), "value", meter)


_FAULT_FIELDS = {"id": int, "rule": str, "target": str, "status": str, "first": int, "last": int,
                 "kwh_per_day": float, "vnd_per_day": float}


def _faults(b: dict) -> None:
    fs = b.get("faults")
    _need(isinstance(fs, list) and len(fs) <= 1000, "field", "faults")
    for f in fs:
        _need(isinstance(f, dict) and set(f) == set(_FAULT_FIELDS), "field", "fault")
        _need(_int(f["id"], 1, 2**62) and _int(f["first"], *EPOCH_RANGE)
              and _int(f["last"], *EPOCH_RANGE), "value", "fault times")
        _need(all(_text(f[k]) for k in ("rule", "target", "status")), "value", "fault text")
        _need(f["status"] in ("open", "acknowledged", "closed"), "value", "fault status")
        _need(_num(f["kwh_per_day"], 0, 1e7) and _num(f["vnd_per_day"], 0, 1e12), "value",
              "fault cost")


_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def _ledger(b: dict) -> None:
    _need(_date(b.get("day")), "field", "day")
    for k in ("writes", "failed", "released", "held", "below_floor"):
        _need(_int(b.get(k), 0, 10**9), "field", k)


MONTHLY_LIMITS = (("kwh", 1e10), ("kwh_ac", 1e10), ("vnd", 1e14), ("peak_kw", 1e6),
                  ("coverage", 1.0), ("hours_below_25", 1e6))


def _monthly(b: dict) -> None:
    _need(_date(b.get("month"), month_only=True), "field", "month")
    for k, hi in MONTHLY_LIMITS:
        v = b.get(k)
        _need(v is None or _num(v, 0, hi), "field", k)


def _site(b: dict) -> None:
    _need(_text(b.get("name")) and b["name"].strip() != "", "field", "name")
    _need(zone_ok(b.get("timezone")), "field", "timezone")
    _need(_text(b.get("organisation")), "field", "organisation")
    _need(_num(b.get("floor_area_m2"), 1, 1e7), "field", "floor_area_m2")
    _need(_int(b.get("staff"), 0, 10**6), "field", "staff")
    _need(_int(b.get("points"), 0, 10**6), "field", "points")
    _need(b.get("outdoor") is None or _ident(b.get("outdoor")), "field", "outdoor")
    ms = b.get("meters")
    _need(isinstance(ms, list) and len(ms) <= 500, "field", "meters")
    for m in ms:
        _need(isinstance(m, dict) and _ident(m.get("id")) and _text(m.get("name"))
              and _text(m.get("measures"), 40)
              and (m.get("parent") is None or _ident(m.get("parent"))), "field", "meter")


_CHECKS = {"readings": _readings, "energy": _energy, "faults": _faults, "ledger": _ledger,
           "monthly": _monthly, "site": _site}


# --- times against the receiver's clock ---------------------------------------------------------

def _not_ahead(t: int, now: int, what: str) -> None:
    _need(t <= now + FUTURE_S, "future", what)


def _readings_when(b: dict, now: int) -> None:
    last = max((s[0] for samples in b["p"].values() for s in samples), default=0)
    _not_ahead(b["t0"] + last, now, "readings")
    _need(b["t0"] >= now - READINGS_PAST_S, "past", "readings")


def _energy_when(b: dict, now: int) -> None:
    n = max((len(v) for v in b["m"].values()), default=0)
    _not_ahead(b["t0"] + n * b["step"], now, "energy")
    _need(b["t0"] >= now - READINGS_PAST_S, "past", "energy")


def _faults_when(b: dict, now: int) -> None:
    for f in b["faults"]:
        _not_ahead(max(f["first"], f["last"]), now, "fault")


def _day_when(b: dict, now: int) -> None:
    import datetime as dt

    key = "day" if "day" in b else "month"
    d = dt.date.fromisoformat(b[key] if key == "day" else b[key] + "-01")
    _not_ahead(int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp()),
               now, key)


_WHEN = {"readings": _readings_when, "energy": _energy_when, "faults": _faults_when,
         "ledger": _day_when, "monthly": _day_when}
