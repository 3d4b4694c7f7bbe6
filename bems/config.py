"""Site file (TOML) → frozen Site, reporting every error in one pass with file, line and field:
what each table and field means (the generic reader is `bems.tomlreader`)."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bems import validate
from bems.config_links import (_bacnet, _notify, _portfolio, _weather, _web,  # noqa: F401
                               interface_ok)
from bems.config_modbus import _check_modbus_maps, _modbus_device, _modbus_point, _templated
from bems.tomlreader import (ConfigError, ConfigIssue, Path_, _key_lines, _one_of,  # noqa: F401
                             _positive, _priority, _Reader)
from bems.strategies import params as strategy_params
from bems.strategies.params import StrategyParams
from bems.site import (
    ADDRESS_HELP, AHU_POINTS, METER_MEASURES, POINT_KINDS, ZONE_KINDS, AirHandler, Building,
    Calendar, Control, Device, Meter, Point, Reports, Schedule, Site, Storage, Tariff, Zone,
    address_problem, canonical_device_address, canonical_object, routed_parts,
)

DEMO_SITE = "demo_site.toml"
_OBJECT_TYPES = (
    "analog-input", "analog-output", "analog-value", "binary-input", "binary-output",
    "binary-value", "multi-state-input", "multi-state-output", "multi-state-value",
    "lighting-output", "binary-lighting-output", "schedule", "calendar", "trend-log", "device",
)
_COMMANDABLE = ("analog-output", "analog-value", "binary-output", "binary-value",
                "multi-state-output", "multi-state-value", "lighting-output",
                "binary-lighting-output")

def demo_site_path() -> Path:
    return Path(str(resources.files("bems") / "data" / DEMO_SITE))


def load_site(path: str | Path | None = None) -> Site:
    """Parse and validate a site file (the embedded demo when path is None)."""
    p = Path(path) if path is not None else demo_site_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([ConfigIssue(str(p), None, "", f"cannot read: {err.strerror}")]) from err
    return parse_site(text, str(p), source=p)


def parse_site(text: str, filename: str = "<site>", source: Path | None = None) -> Site:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"line (\d+)", str(err))
        raise ConfigError([ConfigIssue(filename, int(m.group(1)) if m else None, "",
                                       f"not valid TOML: {err}")]) from err
    r = _Reader(filename, _key_lines(text))
    site = _build_site(r, data, source)
    if r.issues:
        raise ConfigError(sorted(r.issues, key=lambda i: (i.line or 0, i.field)))
    assert site is not None
    return site


MAX_RANGE_DAYS = 366  # a closure from..to
POLICY_FLOOR_RANGE = (25.0, 30.0)  # Joint Circular 111/2009: cooling at 25 °C or above


# --- building the site --------------------------------------------------------------------

_TOP = ("site", "calendar", "control", "storage", "strategies", "reports", "tariffs", "buildings",
        "devices", "points", "zones", "meters", "schedules", "web", "bacnet", "air_handlers",
        "faults", "weather", "portfolio", "notify", "simulator")  # [simulator]: the simulator's own


def _build_site(r: _Reader, data: dict, source: Path | None) -> Site | None:
    r.table(data, (), _TOP)
    s = r.table(data.get("site", {}), ("site",),
                ("name", "timezone", "latitude", "longitude"))
    if "site" not in data:
        r.error(("site",), "the [site] table is missing")

    def tz_ok(v: str) -> str | None:
        try:
            ZoneInfo(v)
            return None
        except (ZoneInfoNotFoundError, ValueError):
            return f"unknown time zone {v!r} (e.g. Asia/Ho_Chi_Minh)"

    name = r.get(s, ("site",), "name", str, "")
    tz = r.get(s, ("site",), "timezone", str, "Asia/Ho_Chi_Minh", tz_ok)
    lat = r.get(s, ("site",), "latitude", float, 20.86,
                lambda v: None if -90 <= v <= 90 else "must be within -90..90")
    lon = r.get(s, ("site",), "longitude", float, 106.68,
                lambda v: None if -180 <= v <= 180 else "must be within -180..180")

    buildings = [_building(r, p, d, source) for p, d in r.tables(data, "buildings")]
    devices = [_device(r, p, d) for p, d in r.tables(data, "devices")]
    control = _control(r, data.get("control", {}))
    protocol_of = {d.id: d.protocol for d in devices if d is not None}
    points = [_modbus_point(r, p, d) if isinstance(d, dict) and
              protocol_of.get(str(d.get("device"))) == "modbus" else _point(r, p, d)
              for p, d in r.tables(data, "points")]
    points += _templated(r, data, devices)
    zones = [_zone(r, p, d) for p, d in r.tables(data, "zones")]
    meters = [_meter(r, p, d) for p, d in r.tables(data, "meters")]
    ahus = [_air_handler(r, p, d) for p, d in r.tables(data, "air_handlers")]
    faults = _faults(r, data.get("faults", {}))
    weather = _weather(r, data["weather"]) if "weather" in data else None
    portfolio = _portfolio(r, data["portfolio"], source) if "portfolio" in data else None
    notify = _notify(r, data["notify"], source) if "notify" in data else None
    schedules = [_schedule(r, p, d) for p, d in r.tables(data, "schedules")]
    tariffs = [_tariff(r, p, d) for p, d in r.tables(data, "tariffs")]
    calendar = _calendar(r, data.get("calendar", {}))
    st = r.table(data.get("storage", {}), ("storage",), ("retention_days", "backup_dir",
                                                         "backup_keep"))
    storage = Storage(r.get(st, ("storage",), "retention_days", int, 400,
                            lambda v: None if 1 <= v <= 36_500 else
                            f"must be 1..36500 days (100 years), got {v}") or 400,
                      r.get(st, ("storage",), "backup_dir", str, "backups",
                            lambda v: None if v.strip() and "\x00" not in v else
                            "must be a folder's path"),
                      r.get(st, ("storage",), "backup_keep", int, 7,
                            lambda v: None if 0 <= v <= 1000 else
                            f"must be 0..1000 backups (0: none), got {v}"))

    strategies = _strategies(r, data.get("strategies", {}), control)
    rp = r.table(data.get("reports", {}), ("reports",),
                 ("baseline_from", "baseline_to", "staff", "organisation"))
    reports = Reports(baseline_from=r.date(rp, ("reports",), "baseline_from", None),
                      baseline_to=r.date(rp, ("reports",), "baseline_to", None),
                      staff=r.get(rp, ("reports",), "staff", int, 0,
                                  lambda v: None if 0 <= v <= 1_000_000 else
                                  "must be 0..1000000 people"),
                      organisation=r.get(rp, ("reports",), "organisation", str, ""))
    if reports.baseline_from and reports.baseline_to and \
            reports.baseline_to < reports.baseline_from:
        r.error(("reports", "baseline_to"), "must not be before baseline_from")
    _check_refs(r, data, buildings, devices, points, zones, meters, schedules, control)
    _check_zone_setpoints(r, zones, control)
    _check_air_handlers(r, ahus, points, zones)
    if r.issues:
        return None
    site = Site(name=name, timezone=tz, latitude=lat, longitude=lon,
                buildings=tuple(buildings), zones=tuple(zones), devices=tuple(devices),
                points=tuple(points), meters=tuple(meters), schedules=tuple(schedules),
                tariffs=tuple(tariffs), calendar=calendar, control=control, storage=storage,
                web=_web(r, data.get("web", {}), source),
                bacnet=_bacnet(r, data.get("bacnet", {})),
                strategies=strategies, reports=reports, air_handlers=tuple(ahus),
                faults=faults, weather=weather, portfolio=portfolio, notify=notify,
                source=source)
    if portfolio is not None:  # what the city would refuse is refused here
        from bems.portfolio.registry import problems

        for path, message in problems(site):
            r.error(path, message)
        if r.issues:
            return None
    return site


def _strategies(r: _Reader, d: Any, control: Control) -> StrategyParams:
    p: Path_ = ("strategies",)
    if not isinstance(d, dict):
        r.error(p, "must be a table")
        return StrategyParams()
    clean, problems = strategy_params.validate(d, control.policy_min_cooling_setpoint)
    for key, _code, message in problems:
        r.error(p + (key,), message)
    return StrategyParams(**clean) if not problems else StrategyParams()


def _building(r: _Reader, p: Path_, d: Any, source: Path | None = None) -> Building | None:
    d = r.table(d, p, ("id", "name", "floors", "floor_area_m2", "plans"))
    floors = r.get(d, p, "floors", int, 1, _positive)
    plans = []
    here = source.parent if source else Path.cwd()
    raw = d.get("plans", []) if isinstance(d, dict) else []
    if not isinstance(raw, list):
        r.error(p + ("plans",), "must be a list of { floor = N, file = \"plan.svg\" }")
        raw = []
    for i, plan in enumerate(raw[:200]):
        q = p + ("plans", i)
        plan = r.table(plan, q, ("floor", "file"))
        floor = r.get(plan, q, "floor", int, check=lambda v: None if floors is None or
                      1 <= v <= floors else f"must be 1..{floors}")
        name = r.get(plan, q, "file", str)
        if floor is None or name is None:
            continue
        f = Path(name) if Path(name).is_absolute() else here / name
        from bems.plans import PlanError, check_plan

        try:
            check_plan(f)
        except PlanError as err:
            r.error(q + ("file",), str(err))
            continue
        plans.append((floor, f))
    return Building(id=r.get(d, p, "id", str), name=r.get(d, p, "name", str, ""),
                    floors=floors,
                    floor_area_m2=r.get(d, p, "floor_area_m2", float, check=_positive),
                    plans=tuple(plans))


def _device(r: _Reader, p: Path_, d: Any) -> Device | None:
    d = r.table(d, p, ("id", "name", "address", "instance", "timeout_s", "retries", "schedule",
                       "schedule_object", "calendar_object", "protocol", "unit", "template",
                       "template_points"))
    protocol = r.get(d, p, "protocol", str, "bacnet", _one_of(("bacnet", "modbus")))
    if protocol == "modbus":
        return _modbus_device(r, p, d)
    for key in ("unit", "template", "template_points"):
        if isinstance(d, dict) and key in d:
            r.error(p + (key,), f"{key} is for Modbus devices (protocol = \"modbus\")")
    address = r.get(d, p, "address", str)
    host, port, network, mac = "", 0, None, None
    if address is not None:
        c = canonical_device_address(address) if ":" in address else None
        routed = routed_parts(c) if c else None
        if routed:
            network, mac = routed
        elif c:
            host, port = c.rsplit(":", 1)[0], int(c.rsplit(":", 1)[1])
        else:  # a host without its port is an address to bacpypes, not to a site file
            r.error(p + ("address",), address_problem(address) or
                    f"{address.strip()[:60]!r}: the port too, e.g. {address.strip()[:60]}:47808; "
                    f"{ADDRESS_HELP}")
    return Device(id=r.get(d, p, "id", str), name=r.get(d, p, "name", str, ""), host=host,
                  port=port, network=network, mac=mac,
                  instance=r.get(d, p, "instance", int,
                                 check=lambda v: None if 0 <= v < 4194303
                                 else "device instance must be 0..4194302"),
                  timeout_s=r.get(d, p, "timeout_s", float, 3.0, _positive),
                  retries=r.get(d, p, "retries", int, 1,
                                lambda v: None if v >= 0 else "must be 0 or more"),
                  schedule=r.get(d, p, "schedule", str, None),
                  schedule_object=_canonical(r.get(d, p, "schedule_object", str, None,
                                                   _object_of("schedule"))),
                  calendar_object=_canonical(r.get(d, p, "calendar_object", str, None,
                                                   _object_of("calendar"))))


def _object_of(kind: str) -> Callable[[str], str | None]:
    def check(v: str) -> str | None:
        c = canonical_object(v)
        return None if c and c.split(",")[0] == kind else f"must be {kind},INSTANCE, got {v!r}"
    return check


def _canonical(v: str | None) -> str | None:
    return canonical_object(v) if v is not None else None


def _policy_floor(v: float) -> str | None:
    lo, hi = POLICY_FLOOR_RANGE
    if lo <= v <= hi:
        return None
    return (f"must be {lo:g}..{hi:g} °C (state agencies cool at 25 °C or above, Joint Circular "
            f"111/2009), got {v:g}")


def _control(r: _Reader, d: Any) -> Control:
    p: Path_ = ("control",)
    d = r.table(d, p, ("write_priority", "policy_min_cooling_setpoint", "heartbeat_point"))
    return Control(
        write_priority=r.get(d, p, "write_priority", int, 12, _priority),
        policy_min_cooling_setpoint=r.get(d, p, "policy_min_cooling_setpoint", float, 25.0,
                                          _policy_floor),
        heartbeat_point=r.get(d, p, "heartbeat_point", str, None))


def _point(r: _Reader, p: Path_, d: Any) -> Point | None:
    d = r.table(d, p, ("id", "device", "object", "kind", "name", "property", "unit", "writable",
                       "min", "max", "priority", "cov", "trend_log", "commandable"))

    def obj_ok(v: str) -> str | None:
        c = canonical_object(v)
        if not c:
            return f"must be TYPE,INSTANCE (e.g. analog-value,1), got {v!r}"
        if c.split(",")[0] not in _OBJECT_TYPES and not c.split(",")[0].isdigit():
            return f"unknown object type {c.split(',')[0]!r}"
        return None

    obj = _canonical(r.get(d, p, "object", str, check=obj_ok))
    writable = r.get(d, p, "writable", bool, False)
    lo = r.get(d, p, "min", float, None)
    hi = r.get(d, p, "max", float, None)
    if lo is not None and hi is not None and lo >= hi:
        r.error(p + ("max",), f"max ({hi}) must be greater than min ({lo})")
    if writable and obj and obj.split(",")[0].isdigit():
        r.error(p + ("writable",), f"a proprietary object ({obj}) is read-only for BEMS: its "
                                   "datatypes are the vendor's")
    elif writable and obj and obj.split(",")[0] not in _COMMANDABLE:
        r.error(p + ("writable",), f"{obj.split(',')[0]} objects are not commandable")
    commandable = r.get(d, p, "commandable", bool, True)
    if not commandable and not writable:
        r.error(p + ("commandable",), "only a writable point can be non-commandable")
    return Point(id=r.get(d, p, "id", str), device=r.get(d, p, "device", str), object=obj,
                 kind=r.get(d, p, "kind", str, check=_one_of(POINT_KINDS)),
                 name=r.get(d, p, "name", str, ""),
                 property_name=r.get(d, p, "property", str, "present-value",
                                     lambda v: None if re.fullmatch(
                                         r"[a-z][a-z\-]{1,60}|\d{1,7}", v) else
                                     f"must be a BACnet property name (present-value) or "
                                     f"number, got {v[:60]!r}"),
                 unit=r.get(d, p, "unit", str, ""), writable=writable, min=lo, max=hi,
                 priority=r.get(d, p, "priority", int, None, _priority),
                 cov=r.get(d, p, "cov", bool, False),
                 trend_log=_canonical(r.get(d, p, "trend_log", str, None,
                                            _object_of("trend-log"))),
                 commandable=commandable)


_ZONE_POINTS = ("temperature", "cooling_setpoint", "ac_status", "ac_mode", "lighting",
                "lighting_level", "occupancy")


def _zone(r: _Reader, p: Path_, d: Any) -> Zone | None:
    d = r.table(d, p, ("id", "name", "building", "floor", "area_m2", "kind", "schedule",
                       "setpoint_min", "setpoint_max", "occupied_setpoint")
                + _ZONE_POINTS)
    lo = r.get(d, p, "setpoint_min", float, 22.0,
               lambda v: None if 10 <= v <= 40 else "must be 10..40 °C")
    hi = r.get(d, p, "setpoint_max", float, 30.0,
               lambda v: None if 10 <= v <= 40 else "must be 10..40 °C")
    if lo is not None and hi is not None and lo >= hi:
        r.error(p + ("setpoint_max",), f"must be greater than setpoint_min ({lo})")
    refs = {k: r.get(d, p, k, str, None) for k in _ZONE_POINTS}
    return Zone(id=r.get(d, p, "id", str), name=r.get(d, p, "name", str, ""),
                building=r.get(d, p, "building", str), floor=r.get(d, p, "floor", int),
                area_m2=r.get(d, p, "area_m2", float, check=_positive),
                kind=r.get(d, p, "kind", str, "office", _one_of(ZONE_KINDS)),
                schedule=r.get(d, p, "schedule", str, ""), setpoint_min=lo, setpoint_max=hi,
                occupied_setpoint=r.get(d, p, "occupied_setpoint", float, None),
                **refs)


def _check_zone_setpoints(r: _Reader, zones: list, control: Control) -> None:
    """A zone's own occupied setpoint is never below the policy floor and lies within the
    zone's limits (the planner would clamp it: the file must not say what never happens)."""
    floor = control.policy_min_cooling_setpoint
    for i, z in enumerate(zones):
        if z is None or z.occupied_setpoint is None:
            continue
        p = ("zones", i, "occupied_setpoint")
        if z.occupied_setpoint < floor:
            r.error(p, f"must not be below the policy floor ({floor:g} °C), got "
                       f"{z.occupied_setpoint:g}")
        elif not z.setpoint_min <= z.occupied_setpoint <= z.setpoint_max:
            r.error(p, f"must lie within the zone's setpoint_min..setpoint_max "
                       f"({z.setpoint_min:g}..{z.setpoint_max:g}), got {z.occupied_setpoint:g}")


def _air_handler(r: _Reader, p: Path_, d: Any) -> AirHandler | None:
    d = r.table(d, p, ("id", "name", "floor", "zones") + AHU_POINTS)
    zones = d.get("zones", []) if isinstance(d, dict) else []
    if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones) \
            or len(zones) > 1000:
        r.error(p + ("zones",), "must be a list of zone ids (at most 1000)")
        zones = []
    return AirHandler(id=r.get(d, p, "id", str), name=r.get(d, p, "name", str, ""),
                      floor=r.get(d, p, "floor", int, None), zones=tuple(zones),
                      **{k: r.get(d, p, k, str, None) for k in AHU_POINTS})


def _faults(r: _Reader, d: Any) -> dict[str, float]:
    from bems.faults.rules import check_threshold

    if not isinstance(d, dict):
        r.error(("faults",), "must be a table")
        return {}
    out = {}
    for k, v in d.items():
        problem = check_threshold(k, v)
        if problem:
            r.error(("faults", k), problem)
        else:
            out[k] = float(v)
    return out


def _check_air_handlers(r: _Reader, ahus: list, points: list, zones: list) -> None:
    p_ids = {p.id for p in points if p is not None}
    z_ids = {z.id for z in zones if z is not None}
    seen: set = set()
    for i, a in enumerate(ahus):
        if a is None:
            continue
        if a.id in seen:
            r.error(("air_handlers", i, "id"), f"duplicate id {a.id!r}")
        seen.add(a.id)
        for z in a.zones:
            if z not in z_ids:
                r.error(("air_handlers", i, "zones"), f"no zone with id {z!r}")
        for role, ref in a.points().items():
            if ref not in p_ids:
                r.error(("air_handlers", i, role), f"no point with id {ref!r}")


def _meter(r: _Reader, p: Path_, d: Any) -> Meter | None:
    d = r.table(d, p, ("id", "name", "measures", "parent", "building", "floor", "power",
                       "energy"))
    m = Meter(id=r.get(d, p, "id", str), name=r.get(d, p, "name", str, ""),
              measures=r.get(d, p, "measures", str, check=_one_of(METER_MEASURES)),
              parent=r.get(d, p, "parent", str, None), building=r.get(d, p, "building", str, None),
              floor=r.get(d, p, "floor", int, None), power=r.get(d, p, "power", str, None),
              energy=r.get(d, p, "energy", str, None))
    if "power" not in d and "energy" not in d:
        r.error(p, "a meter needs a power point, an energy point, or both")
    return m


def _report(r: _Reader, p: Path_, problems: list) -> None:
    for path, _code, message in problems:
        r.error(p + path, message)


def _schedule(r: _Reader, p: Path_, d: Any) -> Schedule | None:
    sid = r.get(d, p, "id", str) if isinstance(d, dict) else None
    schedule, problems = validate.schedule(sid or "", d)
    _report(r, p, problems)
    return schedule


def _tariff(r: _Reader, p: Path_, d: Any) -> Tariff | None:
    d = r.table(d, p, ("name", "valid_from", "kind", "vat", "price_vnd_per_kwh", "prices",
                       "periods"))
    kind = r.get(d, p, "kind", str, "flat", _one_of(("flat", "tou")))
    price = prices = None
    periods: list = []
    if kind == "flat":
        price = r.get(d, p, "price_vnd_per_kwh", float, check=_positive)
    elif kind == "tou":
        pr = r.table(d.get("prices", {}), p + ("prices",), ("peak", "normal", "offpeak"))
        prices = tuple((band, r.get(pr, p + ("prices",), band, float, check=_positive))
                       for band in ("peak", "normal", "offpeak"))
        periods, problems = validate.periods(d.get("periods", []), bands=True)
        _report(r, p + ("periods",), problems)
    return Tariff(name=r.get(d, p, "name", str, ""), valid_from=r.date(d, p, "valid_from"),
                  kind=kind, vat=r.get(d, p, "vat", float, 0.0,
                                       lambda v: None if 0 <= v < 1 else "a fraction, e.g. 0.08"),
                  price_vnd_per_kwh=price, prices=prices or (), periods=tuple(periods))


def _dated(r: _Reader, items: Any, p: Path_) -> tuple[tuple[dt.date, str], ...]:
    """A list of dates or {date, name} tables, also {from, to, name} ranges."""
    if not isinstance(items, list):
        r.error(p, "must be a list")
        return ()
    out: list[tuple[dt.date, str]] = []
    for i, it in enumerate(items):
        q = p + (i,)
        if isinstance(it, (dt.date, str)):
            day = r._to_date(it, q)
            if day:
                out.append((day, ""))
            continue
        it = r.table(it, q, ("date", "from", "to", "name"))
        name = r.get(it, q, "name", str, "")
        if "date" in it:
            day = r.date(it, q, "date")
            if day:
                out.append((day, name))
        else:
            a, b = r.date(it, q, "from"), r.date(it, q, "to")
            if a and b:
                if b < a:
                    r.error(q + ("to",), "must not be before 'from'")
                elif (b - a).days > MAX_RANGE_DAYS:
                    r.error(q + ("to",), f"a range is at most {MAX_RANGE_DAYS} days (a closure, "
                                         "not a calendar)")
                    continue
                while a <= b:
                    out.append((a, name))
                    a += dt.timedelta(days=1)
    return tuple(out)


def _calendar(r: _Reader, d: Any) -> Calendar:
    p: Path_ = ("calendar",)
    d = r.table(d, p, ("country", "closures", "workdays"))
    return Calendar(country=r.get(d, p, "country", str, "VN"),
                    closures=_dated(r, d.get("closures", []), p + ("closures",)),
                    workdays=_dated(r, d.get("workdays", []), p + ("workdays",)))


def _check_refs(r: _Reader, data: dict, buildings: list, devices: list, points: list,
                zones: list, meters: list, schedules: list, control: Control) -> None:
    def unique(key: str, items: list) -> set:
        seen: set = set()
        for i, it in enumerate(items):
            if it is not None and it.id is not None:
                if it.id in seen:
                    r.error((key, i, "id"), f"duplicate id {it.id!r}")
                seen.add(it.id)
        return seen

    b_ids, d_ids = unique("buildings", buildings), unique("devices", devices)
    p_ids, m_ids = unique("points", points), unique("meters", meters)
    s_ids = unique("schedules", schedules)
    unique("zones", zones)
    seen_obj: dict[tuple, int] = {}
    for i, pt in enumerate(points):
        if pt.device and pt.device not in d_ids:
            r.error(("points", i, "device"), f"no device with id {pt.device!r}")
        key = (pt.device, pt.object)
        if pt.object and key in seen_obj:
            r.error(("points", i, "object"), f"{pt.object} on {pt.device} is already point "
                                             f"{points[seen_obj[key]].id!r}")
        seen_obj.setdefault(key, i)
    addr: dict[str, str] = {}
    for i, dev in enumerate(devices):
        if dev.schedule and dev.schedule not in s_ids:
            r.error(("devices", i, "schedule"), f"no schedule with id {dev.schedule!r}")
        if dev.schedule and not dev.schedule_object:
            r.error(("devices", i, "schedule_object"),
                    "a device that schedules locally needs its schedule object")
        if (dev.port or dev.routed) and dev.address in addr:  # (Modbus: HOST:PORT/UNIT)
            r.error(("devices", i, "address"), f"{dev.address} is already used by device "
                                               f"{addr[dev.address]!r}")
        addr.setdefault(dev.address, dev.id)
    _check_modbus_maps(r, devices, points)
    for i, z in enumerate(zones):
        if z.building and z.building not in b_ids:
            r.error(("zones", i, "building"), f"no building with id {z.building!r}")
        if z.schedule and z.schedule not in s_ids:
            r.error(("zones", i, "schedule"), f"no schedule with id {z.schedule!r}")
        for role in _ZONE_POINTS:
            ref = getattr(z, role)
            if ref and ref not in p_ids:
                r.error(("zones", i, role), f"no point with id {ref!r}")
    for i, m in enumerate(meters):
        if m.parent and m.parent not in m_ids:
            r.error(("meters", i, "parent"), f"no meter with id {m.parent!r}")
        if m.parent and m.parent == m.id:
            r.error(("meters", i, "parent"), "a meter cannot be its own parent")
        if m.building and m.building not in b_ids:
            r.error(("meters", i, "building"), f"no building with id {m.building!r}")
        for role in ("power", "energy"):
            ref = getattr(m, role)
            if ref and ref not in p_ids:
                r.error(("meters", i, role), f"no point with id {ref!r}")
    if control.heartbeat_point and control.heartbeat_point not in p_ids:
        r.error(("control", "heartbeat_point"), f"no point with id {control.heartbeat_point!r}")
    if "tariffs" in data and not data.get("tariffs"):
        r.error(("tariffs",), "at least one tariff is needed for costs")
