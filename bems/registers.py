"""A Modbus point as the site file describes it: its table (coil, discrete, holding, input),
its 0-based address, how its registers make a number (type, word and byte order, scale,
offset, the device's unit). Part of the site model (like BACnet's `type,instance`); the wire
(requests, decoding) is connectors/modbus.

Addresses are 0-based protocol addresses, as on the wire. The "Modicon" convention of meter
manuals is accepted and converted: 40001 (or 400001) is holding register 0, 30001 input
register 0, 10001 discrete input 0, 00001 coil 0; such a number must match the point's table.
"""

from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass, replace
from importlib import resources

# table → (function code to read, bits?, writable)
TABLES: dict[str, tuple[int, bool, bool]] = {
    "coil": (1, True, True), "discrete": (2, True, False),
    "holding": (3, False, True), "input": (4, False, False),
}
_MODICON = {"0": "coil", "1": "discrete", "3": "input", "4": "holding"}
# type → (struct format, registers)
TYPES: dict[str, tuple[str, int]] = {
    "bool": ("H", 1), "int16": ("h", 1), "uint16": ("H", 1), "int32": ("i", 2),
    "uint32": ("I", 2), "int64": ("q", 4), "uint64": ("Q", 4), "float32": ("f", 2),
    "float64": ("d", 4),
}
ORDERS = ("big", "little")
# a meter's unit → (the unit BEMS stores, factor): a meter in W must not read 1000× off
UNITS: dict[str, tuple[str, float]] = {
    "W": ("kW", 1e-3), "kW": ("kW", 1.0), "MW": ("kW", 1e3),
    "Wh": ("kWh", 1e-3), "kWh": ("kWh", 1.0), "MWh": ("kWh", 1e3),
    "var": ("kvar", 1e-3), "kvar": ("kvar", 1.0), "VA": ("kVA", 1e-3), "kVA": ("kVA", 1.0),
    "varh": ("kvarh", 1e-3), "kvarh": ("kvarh", 1.0),
    "V": ("V", 1.0), "kV": ("V", 1e3), "mA": ("A", 1e-3), "A": ("A", 1.0), "Hz": ("Hz", 1.0),
    "°C": ("°C", 1.0), "%": ("%", 1.0), "": ("", 1.0),
}
MAX_REGISTERS = 125  # per read request (Modbus: 125 registers, 2000 bits)
MAX_BITS = 2000
LAST_ADDRESS = 65535


class MapError(ValueError):
    """A register map entry that cannot be right (one line, says which point and why)."""


@dataclass(frozen=True)
class Register:
    """One point's place in a device's register map."""

    id: str
    table: str = "holding"
    address: int = 0
    type: str = "uint16"
    word_order: str = "big"
    byte_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""

    @property
    def bits(self) -> bool:
        return TABLES[self.table][1]

    @property
    def width(self) -> int:
        """Registers (or bits) the point takes."""
        return 1 if self.bits else TYPES[self.type][1]

    @property
    def si_unit(self) -> str:
        return UNITS[self.unit][0]


def host_ok(host: str) -> bool:
    """An IPv4 address or a host name (letters, digits, dots, hyphens; at most 253)."""
    return 0 < len(host) <= 253 and host.isascii() and all(
        0 < len(label) <= 63 and label.replace("-", "").isalnum() for label in host.split("."))


def modbus_address(value: object, table: str) -> int:
    """A 0-based address from a site file or the CLI: 0..65535, or the Modicon 40001 form."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MapError(f"address must be a whole number, not {value!r}")
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()):  # (not "٤٠٠٠١" or full-width digits)
        raise MapError(f"address must be a whole number, not {str(value)[:40]!r}")
    if len(text) > 6:
        raise MapError(f"address {text[:12]}… is past 65535 (0-based, or 40001 for holding 0)")
    if len(text) in (5, 6) and text[0] in _MODICON and int(text[1:]) >= 1:
        meant = _MODICON[text[0]]
        if meant != table:
            raise MapError(f"address {text} is a {meant} address in the 1-based convention, "
                           f"but the table is {table}")
        return int(text[1:]) - 1
    n = int(text)
    if n > LAST_ADDRESS:
        raise MapError(f"address {n} is past 65535 (0-based, or 40001 for holding 0)")
    return n


def register(pid: str, table: str = "holding", address: object = 0, type: str = "uint16",
             word_order: str = "big", byte_order: str = "big", scale: float = 1.0,
             offset: float = 0.0, unit: str = "") -> Register:
    """A checked register map entry; MapError says what is wrong."""
    if table not in TABLES:
        raise MapError(f"{pid}: table must be one of {', '.join(TABLES)}, not {table!r}")
    if type not in TYPES:
        raise MapError(f"{pid}: type must be one of {', '.join(TYPES)}, not {type!r}")
    if TABLES[table][1] and type != "bool":
        raise MapError(f"{pid}: a {table} is one bit: its type is bool")
    for name, order in (("word_order", word_order), ("byte_order", byte_order)):
        if order not in ORDERS:
            raise MapError(f"{pid}: {name} must be big or little, not {order!r}")
    for name, v in (("scale", scale), ("offset", offset)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise MapError(f"{pid}: {name} must be a finite number, not {v!r}")
    if scale == 0:
        raise MapError(f"{pid}: scale must not be 0")
    if unit not in UNITS:
        raise MapError(f"{pid}: unit must be one of {', '.join(u for u in UNITS if u)} "
                       f"(or none), not {unit!r}")
    try:
        addr = modbus_address(address, table)
    except MapError as err:
        raise MapError(f"{pid}: {err}") from None
    reg = Register(pid, table, addr, type, word_order, byte_order, float(scale), float(offset),
                   unit)
    if addr + reg.width - 1 > LAST_ADDRESS:
        raise MapError(f"{pid}: {type} at {addr} runs past address 65535")
    return reg


def check_map(registers: list[Register]) -> list[str]:
    """Problems of one device's map: two points on the same registers (the same table)."""
    problems, taken = [], {}
    for reg in sorted(registers, key=lambda r: (r.table, r.address)):
        for a in range(reg.address, reg.address + reg.width):
            other = taken.get((reg.table, a))
            if other is not None:
                problems.append(f"{reg.id} overlaps {other} at {reg.table} {a}")
                break
            taken[(reg.table, a)] = reg.id
    return problems


# --- meter templates: the makers' public register maps (bems/data/modbus_templates.toml) ----

@dataclass(frozen=True)
class TemplatePoint:
    key: str  # the point id is DEVICE.KEY
    register: Register
    kind: str  # a site point kind: power, energy, other
    vi: str
    en: str


@dataclass(frozen=True)
class MeterTemplate:
    name: str
    title: str
    source: str  # the maker's document the map comes from
    points: tuple[TemplatePoint, ...]


@functools.lru_cache(maxsize=1)
def meter_templates() -> dict[str, MeterTemplate]:
    """Every shipped template, checked like a site file's registers (a bad entry is a bug)."""
    data = tomllib.loads((resources.files("bems") / "data" / "modbus_templates.toml")
                         .read_text(encoding="utf-8"))
    out = {}
    for name, t in data.items():
        pts = tuple(TemplatePoint(key, register(key, e["table"], e["address"], e["type"],
                                                e.get("word_order", "big"),
                                                e.get("byte_order", "big"), e.get("scale", 1.0),
                                                e.get("offset", 0.0), e["unit"]),
                                  e["kind"], e["vi"], e["en"])
                    for key, e in t["points"].items())
        problems = check_map([p.register for p in pts])
        if problems:
            raise MapError(f"template {name}: {problems[0]}")
        out[name] = MeterTemplate(name, t["name"], t["source"], pts)
    return out


def template_points(name: str, device: str, keys: list[str] | None = None
                    ) -> list[TemplatePoint]:
    """The points a device of template `name` gets (only `keys` when given), their registers'
    ids DEVICE.KEY. MapError names what is unknown."""
    known = meter_templates()
    if name not in known:
        raise MapError(f"no meter template {name!r}; known: {', '.join(sorted(known))}")
    pts = known[name].points
    if keys is not None:
        have = {p.key for p in pts}
        wrong = [k for k in keys if k not in have]
        if wrong:
            raise MapError(f"template {name} has no point {wrong[0]!r}; it has "
                           f"{', '.join(p.key for p in pts)}")
        pts = tuple(p for p in pts if p.key in keys)
    return [replace(p, register=replace(p.register, id=f"{device}.{p.key}")) for p in pts]
