"""The site model: buildings, zones, devices, points, meters, schedules, tariffs. No I/O."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from bems.registers import Register
    from bems.strategies.params import StrategyParams

POINT_KINDS = (
    "temperature",  # zone air temperature, °C
    "outdoor_temperature",
    "humidity",
    "setpoint",  # cooling setpoint, °C
    "status",  # on/off (AC unit, fan)
    "mode",  # AC mode (multi-state)
    "lighting",  # lighting circuit on/off
    "dimming",  # lighting level, %
    "occupancy",
    "outdoor_air",  # an air handler's outdoor-air damper (on/off)
    "supply_air_temperature",  # an air handler's, °C
    "supply_air_setpoint",  # °C
    "mixed_air_temperature",  # °C
    "return_air_temperature",  # °C
    "outdoor_air_fraction",  # share of outdoor air in the supply, %
    "fan_speed",  # %
    "power",  # kW
    "energy",  # kWh, accumulating
    "heartbeat",
    "other",
)
METER_MEASURES = ("main", "ac", "lighting", "plugs", "other")
ZONE_KINDS = ("office", "meeting", "corridor", "lobby", "service")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Building:
    id: str
    name: str
    floors: int
    floor_area_m2: float
    # floor plans the site drew: (floor, SVG file); zones are the elements with id "zone-ID"
    plans: tuple[tuple[int, Path], ...] = ()


MAX_INSTANCE = 4194303  # BACnet object instances are 22 bits; 4194303 means "none"


def canonical_object(text: str) -> str | None:
    """'analog-value, 002' → 'analog-value,2': one spelling per object, so a point is found
    however a person or another tool writes it. None if it is not TYPE,INSTANCE."""
    m = re.fullmatch(r"\s*([A-Za-z][A-Za-z\-]*|\d{1,4})\s*,\s*(\d{1,7})\s*", str(text))
    if m is None or int(m.group(2)) >= MAX_INSTANCE:
        return None
    otype = m.group(1).lower()
    if otype.isdigit():  # a numbered type: proprietary ones are 128..1023
        if not 128 <= int(otype) <= 1023:
            return None
        otype = str(int(otype))
    return f"{otype},{int(m.group(2))}"


def canonical_address(text: str, default_port: int = 47808) -> str | None:
    """'localhost:47821', ' 127.000.0.1 :47821' → '127.0.0.1:47821' (BACnet/IP: an IPv4
    address and a UDP port). Names other than localhost are not resolved here. None if it is
    not HOST[:PORT]."""
    host, _, port = str(text).strip().partition(":")
    host = host.strip().lower()
    if host == "localhost":
        host = "127.0.0.1"
    parts = host.split(".")
    if all(p.isdigit() for p in parts):  # dotted numbers: an IPv4 address, or nothing
        if len(parts) != 4 or not all(len(p) <= 3 and int(p) < 256 for p in parts):
            return None
        host = ".".join(str(int(p)) for p in parts)
    elif not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{0,252}", host):
        return None
    port = port.strip()
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return None
    return f"{host}:{int(port) if port else default_port}"


MAX_NETWORK = 65534  # BACnet network numbers 1..65534 (65535 is "all networks")


def canonical_device_address(text: str, default_port: int = 47808) -> str | None:
    """A device's address in the site file and on the command line, in the notation bacpypes,
    BAC0 and YABE users know:

    - ``HOST[:PORT]`` — a BACnet/IP device on BEMS's own IP network (``192.168.10.21:47808``);
    - ``NET:MAC`` — a device behind a BACnet router: network number 1..65534, then the MAC on
      that network, decimal (an MS/TP station, ``2001:5``) or hex (``2001:0x0a0b``);
    - ``NET:HOST:PORT`` — a BACnet/IP device on another BACnet network behind a router.

    One spelling per device ('2001:005' → '2001:5', '2001:0X0A' → '2001:0x0a'); None if it is
    none of these."""
    text = str(text).strip()
    m = re.fullmatch(r"(\d{1,5})\s*:\s*(.+)", text)
    if m and "." not in m.group(1):
        net = int(m.group(1))
        rest = m.group(2).strip()
        if not 1 <= net <= MAX_NETWORK:
            return None
        if re.fullmatch(r"\d{1,3}", rest):  # one-octet MAC (MS/TP, ARCNET)
            return f"{net}:{int(rest)}" if int(rest) < 256 else None
        if re.fullmatch(r"0[xX](?:[0-9a-fA-F]{2}){1,7}", rest):
            return f"{net}:0x{rest[2:].lower()}"
        if "." in rest:  # a BACnet/IP station on a remote network
            ip = canonical_address(rest, default_port)
            return f"{net}:{ip}" if ip and re.match(r"\d", ip) else None
        return None
    return canonical_address(text, default_port)


ADDRESS_HELP = ("expected HOST:PORT (an IPv4 address, a port 1..65535) or NETWORK:MAC behind a "
                "BACnet router (e.g. 2001:5)")


def address_problem(text: str) -> str:
    """Why a device address is not one (for the one-line error), '' if it is one."""
    text = str(text).strip()
    if canonical_device_address(text) is not None:
        return ""
    shown = repr(text[:60])
    m = re.fullmatch(r"(\d{1,5})\s*:\s*(.+)", text)
    if m and "." not in m.group(1):
        net, rest = int(m.group(1)), m.group(2).strip()
        if not 1 <= net <= MAX_NETWORK:
            return f"{shown}: a BACnet network number is 1..{MAX_NETWORK}"
        if re.fullmatch(r"\d{1,20}", rest):
            wide = f"{int(rest):x}"
            wide = "0" * (len(wide) % 2) + wide
            return (f"{shown}: a decimal MAC is one byte (0-255, an MS/TP station); a longer "
                    f"MAC is written in hex, e.g. {net}:0x{wide[-14:]}")
        if re.fullmatch(r"0[xX][0-9a-fA-F]*", rest):
            return (f"{shown}: a hex MAC is whole bytes, 1 to 7 of them (two hex digits each, "
                    "e.g. 2001:0x0a0b)")
    return f"{shown}: {ADDRESS_HELP}"


def canonical_ip_address(text: str, default_port: int = 47808) -> str | None:
    """Like `canonical_address`, but an IPv4 address only (a BBMD: BACnet/IP has no names)."""
    c = canonical_address(text, default_port)
    return c if c and re.fullmatch(r"[\d.]+:\d+", c) else None


def routed_parts(address: str) -> tuple[int, str] | None:
    """(network, MAC) of a canonical routed address, None for a device on BEMS's network."""
    head, sep, rest = address.partition(":")
    if sep and head.isdigit() and "." not in head and (rest.isdigit() or rest.startswith("0x")
                                                       or rest.count(":") == 1):
        return int(head), rest
    return None


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    host: str
    port: int
    instance: int
    timeout_s: float = 3.0
    retries: int = 1
    schedule: str | None = None  # site schedule the controller runs locally, if it does
    schedule_object: str | None = None  # e.g. "schedule,1"
    calendar_object: str | None = None  # e.g. "calendar,1" (holidays for local scheduling)
    network: int | None = None  # a device behind a BACnet router: its network number
    mac: str | None = None  # … and its MAC on that network ("5", "0x0a0b", "10.0.0.5:47808")
    protocol: str = "bacnet"  # bacnet | modbus (Modbus TCP: HOST:PORT and a unit id)
    unit: int | None = None  # Modbus unit id (1-247)

    @property
    def address(self) -> str:
        if self.network is not None:
            return f"{self.network}:{self.mac}"
        if self.protocol == "modbus":  # units behind one gateway share its HOST:PORT
            return f"{self.host}:{self.port}/{self.unit}"
        return f"{self.host}:{self.port}"

    @property
    def routed(self) -> bool:
        return self.network is not None


@dataclass(frozen=True)
class Point:
    id: str
    device: str
    object: str  # "analog-value,1"
    kind: str
    name: str = ""
    property_name: str = "present-value"
    unit: str = ""
    writable: bool = False
    min: float | None = None
    max: float | None = None
    priority: int | None = None  # None: the site's control priority
    cov: bool = False
    trend_log: str | None = None  # the device's trend-log object that logs this point
    # a writable point with a priority array (BACnet "commandable"); one without (common on
    # gateways, and every Modbus register) is written directly, and BEMS restores the value it
    # replaced when it lets go
    commandable: bool = True
    # a Modbus point: its register map entry (bems.registers.Register fields but the id)
    register: tuple[tuple[str, object], ...] = ()

    def modbus(self) -> "Register":
        from bems.registers import Register

        return Register(self.id, **dict(self.register))

    @property
    def object_type(self) -> str:
        return self.object.split(",")[0]

    @property
    def object_instance(self) -> int:
        return int(self.object.split(",")[1])


@dataclass(frozen=True)
class Zone:
    id: str
    name: str
    building: str
    floor: int
    area_m2: float
    kind: str = "office"
    schedule: str = ""
    temperature: str | None = None
    cooling_setpoint: str | None = None
    ac_status: str | None = None
    ac_mode: str | None = None
    lighting: str | None = None
    lighting_level: str | None = None
    occupancy: str | None = None
    setpoint_min: float = 22.0
    setpoint_max: float = 30.0
    occupied_setpoint: float | None = None  # this zone's own, over [strategies]'

    def points(self) -> dict[str, str]:
        """Role → point id for the points this zone refers to."""
        roles = ("temperature", "cooling_setpoint", "ac_status", "ac_mode", "lighting",
                 "lighting_level", "occupancy")
        return {r: getattr(self, r) for r in roles if getattr(self, r)}


AHU_POINTS = ("supply_air_temperature", "supply_air_setpoint", "mixed_air_temperature",
              "return_air_temperature", "outdoor_air_fraction", "fan_status", "fan_speed",
              "outdoor_air")


@dataclass(frozen=True)
class AirHandler:
    """An air handler (a packaged unit) and the zones it serves; its points by role."""

    id: str
    name: str
    zones: tuple[str, ...] = ()
    floor: int | None = None
    supply_air_temperature: str | None = None
    supply_air_setpoint: str | None = None
    mixed_air_temperature: str | None = None
    return_air_temperature: str | None = None
    outdoor_air_fraction: str | None = None
    fan_status: str | None = None
    fan_speed: str | None = None
    outdoor_air: str | None = None  # the outdoor-air damper command

    def points(self) -> dict[str, str]:
        return {r: getattr(self, r) for r in AHU_POINTS if getattr(self, r)}


@dataclass(frozen=True)
class Meter:
    id: str
    name: str
    measures: str
    parent: str | None = None
    building: str | None = None
    floor: int | None = None
    power: str | None = None
    energy: str | None = None


@dataclass(frozen=True)
class Period:
    days: tuple[int, ...]  # 0 = Monday
    start: dt.time
    end: dt.time


@dataclass(frozen=True)
class Season:
    name: str
    start: tuple[int, int]  # (month, day), inclusive
    end: tuple[int, int]  # (month, day), inclusive; may wrap past new year
    periods: tuple[Period, ...]

    def contains(self, day: dt.date) -> bool:
        md = (day.month, day.day)
        if self.start <= self.end:
            return self.start <= md <= self.end
        return md >= self.start or md <= self.end


@dataclass(frozen=True)
class Schedule:
    id: str
    name: str
    seasons: tuple[Season, ...]

    def season_for(self, day: dt.date) -> Season | None:
        return next((s for s in self.seasons if s.contains(day)), None)


@dataclass(frozen=True)
class TouPeriod:
    band: str  # "peak" | "normal" | "offpeak"
    days: tuple[int, ...]
    start: dt.time
    end: dt.time  # 00:00 means end of day


@dataclass(frozen=True)
class Tariff:
    name: str
    valid_from: dt.date
    kind: str  # "flat" | "tou"
    vat: float
    price_vnd_per_kwh: float | None = None
    prices: tuple[tuple[str, float], ...] = ()  # band → VND/kWh, for "tou"
    periods: tuple[TouPeriod, ...] = ()  # uncovered hours are "normal"


@dataclass(frozen=True)
class Weather:
    """An HTTP JSON outdoor temperature forecast (Open-Meteo's layout), for the predictive
    strategy; without it, persistence (yesterday's same hours)."""
    url: str
    refresh_min: float = 60.0
    timeout_s: float = 10.0


SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Recipient:
    """[[notify.recipients]]: a person or a team, by e-mail and/or a webhook (a JSON POST,
    the bridge to the chat or SMS gateway an agency runs)."""
    name: str
    email: str | None = None
    webhook: str | None = None
    secret_file: Path | None = None  # the webhook's HMAC-SHA256 key
    lang: str = "vi"
    min_severity: str = "warning"
    escalate_after_min: float | None = None  # only if still unacknowledged after N minutes
    quiet_hours: tuple[dt.time, dt.time] | None = None  # (from, to) local; critical goes through

    def secret(self) -> bytes | None:
        if self.secret_file is None:
            return None
        return self.secret_file.read_bytes().strip()


@dataclass(frozen=True)
class Notify:
    """[notify]: alarms and new faults sent to people."""
    recipients: tuple[Recipient, ...]
    smtp: str | None = None  # smtp://HOST:PORT or smtps://HOST:PORT
    starttls: bool = False
    sender: str = ""  # the From address (the site file's `from`)
    username: str | None = None
    password_file: Path | None = None
    base_url: str | None = None  # the web UI's address as people reach it, for links
    damp_min: float = 30.0  # an alarm raised again within this is not sent again
    timeout_s: float = 10.0

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        return self.password_file.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class Portfolio:
    """[portfolio]: this centre reports to the city energy office over MQTT (see
    bems/portfolio/schema.py for what it sends)."""
    broker: str  # mqtt://host:port or mqtts://host:port (TLS)
    site_id: str  # the centre's id at the city; its topics are bems/v1/<site_id>/...
    username: str | None = None
    password_file: Path | None = None  # the credential, kept out of the site file
    ca_file: Path | None = None  # the city's CA, to check the broker's certificate
    cert_file: Path | None = None  # a client certificate, if the broker asks for one
    key_file: Path | None = None
    readings: str = "15m"  # "raw" (every poll) or "15m" (the 15-minute means)
    interval_s: int = 60  # how often new data is put in the outbox and sent
    keep_sent_days: int = 7
    max_unsent: int = 2_000_000  # messages; beyond, the oldest are dropped (and counted)

    @property
    def tls(self) -> bool:
        return self.broker.startswith("mqtts://")

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        return self.password_file.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class Calendar:
    country: str = "VN"
    closures: tuple[tuple[dt.date, str], ...] = ()  # extra off days (Tết closure, events)
    workdays: tuple[tuple[dt.date, str], ...] = ()  # make-up working days (often Saturdays)


@dataclass(frozen=True)
class Control:
    write_priority: int = 12
    policy_min_cooling_setpoint: float = 25.0
    heartbeat_point: str | None = None


@dataclass(frozen=True)
class Reports:
    baseline_from: dt.date | None = None  # the period before BEMS, for savings (IPMVP C)
    baseline_to: dt.date | None = None
    staff: int = 0  # people working in the centre (the yearly report asks)
    organisation: str = ""


@dataclass(frozen=True)
class Storage:
    retention_days: int = 400  # raw readings; rollups are kept
    backup_dir: str = "backups"  # nightly backups; a relative path is from the database's folder
    backup_keep: int = 7  # the newest N kept; 0: no nightly backup


@dataclass(frozen=True)
class Bacnet:
    """BEMS's own BACnet/IP port on the building network."""
    interface: str = "127.0.0.1/8"  # ADDRESS/PREFIX (192.168.10.5/24) or an interface name
    port: int = 47808
    instance: int = 599999  # BEMS's device instance (unique on the internetwork)
    name: str = "BEMS"
    bbmd: str | None = None  # HOST:PORT of a BBMD to register with as a foreign device
    bbmd_ttl: int = 300  # seconds; re-registered before it runs out
    time_sync: bool = False  # set controllers' clocks (TimeSynchronization) when a minute off


@dataclass(frozen=True)
class Web:
    host: str = "127.0.0.1"  # only this machine unless told otherwise
    port: int = 8080
    certificate: Path | None = None  # PEM files: BEMS serves HTTPS itself
    private_key: Path | None = None
    trust_proxy: bool = False  # behind a reverse proxy: trust its X-Forwarded-* headers
    session_hours: float = 10.0


def _default_params():
    from bems.strategies.params import StrategyParams

    return StrategyParams()


@dataclass(frozen=True)
class Site:
    name: str
    timezone: str
    latitude: float
    longitude: float
    buildings: tuple[Building, ...]
    zones: tuple[Zone, ...]
    devices: tuple[Device, ...]
    points: tuple[Point, ...]
    meters: tuple[Meter, ...]
    schedules: tuple[Schedule, ...]
    tariffs: tuple[Tariff, ...]
    calendar: Calendar = field(default_factory=Calendar)
    control: Control = field(default_factory=Control)
    storage: Storage = field(default_factory=Storage)
    reports: Reports = field(default_factory=Reports)
    web: Web = field(default_factory=Web)
    bacnet: Bacnet = field(default_factory=Bacnet)
    strategies: "StrategyParams" = field(default_factory=lambda: _default_params())
    air_handlers: tuple[AirHandler, ...] = ()
    faults: dict[str, float] = field(default_factory=dict)  # [faults] thresholds over defaults
    weather: "Weather | None" = None  # [weather]: the outdoor forecast's provider
    portfolio: "Portfolio | None" = None  # [portfolio]: reporting to the city energy office
    notify: "Notify | None" = None  # [notify]: alarms sent to people
    source: Path | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def floor_area_m2(self) -> float:
        return sum(b.floor_area_m2 for b in self.buildings)

    @cached_property
    def _points_by_id(self) -> dict[str, Point]:
        return {p.id: p for p in self.points}  # ids are unique (checked when the file loads)

    def point(self, point_id: str) -> Point:
        return self._points_by_id[point_id]

    def device(self, device_id: str) -> Device:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def points_of(self, device_id: str) -> list[Point]:
        return [p for p in self.points if p.device == device_id]

    def protocols(self) -> list[str]:
        return sorted({d.protocol for d in self.devices})

    def for_protocol(self, protocol: str) -> "Site":
        """The site as one protocol's connector sees it: its devices and their points only."""
        from dataclasses import replace

        ids = {d.id for d in self.devices if d.protocol == protocol}
        return replace(self, devices=tuple(d for d in self.devices if d.id in ids),
                       points=tuple(p for p in self.points if p.device in ids))

    def meter(self, meter_id: str) -> Meter:
        for m in self.meters:
            if m.id == meter_id:
                return m
        raise KeyError(meter_id)

    def main_meter(self) -> Meter | None:
        """The site's main meter: the first meter that measures "main" and has no parent
        (the root of the meter tree). Reports, the UI and demand limiting all use this one."""
        return next((m for m in self.meters if m.measures == "main" and not m.parent), None)

    def schedule(self, schedule_id: str) -> Schedule:
        for s in self.schedules:
            if s.id == schedule_id:
                return s
        raise KeyError(schedule_id)

    def tariff_on(self, day: dt.date) -> Tariff | None:
        """The tariff in force on a day: the latest one whose valid_from is not after it."""
        valid = [t for t in self.tariffs if t.valid_from <= day]
        return max(valid, key=lambda t: t.valid_from) if valid else None

    def summary(self) -> dict[str, int]:
        return {
            "buildings": len(self.buildings),
            "zones": len(self.zones),
            "devices": len(self.devices),
            "points": len(self.points),
            "meters": len(self.meters),
            "schedules": len(self.schedules),
            "tariffs": len(self.tariffs),
        }
