"""Modbus register maps: where a point sits (table, 0-based address), how its registers make a
number (type, word and byte order, scale, offset, unit), and how a device's points are read in
few requests. Pure: no socket here (connectors/modbus/client.py does the talking).

Addresses are 0-based protocol addresses, as on the wire. The "Modicon" convention of meter
manuals is accepted and converted: 40001 (or 400001) is holding register 0, 30001 input
register 0, 10001 discrete input 0, 00001 coil 0; such a number must match the point's table.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

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


def modbus_address(value: object, table: str) -> int:
    """A 0-based address from a site file or the CLI: 0..65535, or the Modicon 40001 form."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MapError(f"address must be a whole number, not {value!r}")
    text = str(value).strip()
    if not text.isdigit():
        raise MapError(f"address must be a whole number, not {value!r}")
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


@dataclass
class Block:
    """One read request: `count` registers (or bits) of `table` from `start`."""

    table: str
    start: int
    count: int
    members: list[Register] = field(default_factory=list)


def coalesce(registers: list[Register], max_gap: int = 0) -> list[Block]:
    """The fewest requests that read every point: neighbours in one table share a request
    (at most 125 registers or 2000 bits); a gap of up to `max_gap` unmapped registers is read
    through (0: never read what the map does not name; some devices refuse it)."""
    blocks: list[Block] = []
    for reg in sorted(registers, key=lambda r: (r.table, r.address)):
        limit = MAX_BITS if reg.bits else MAX_REGISTERS
        last = blocks[-1] if blocks and blocks[-1].table == reg.table else None
        end = reg.address + reg.width
        if last is not None and reg.address <= last.start + last.count + max_gap and \
                end - last.start <= limit:
            last.count = max(last.count, end - last.start)
            last.members.append(reg)
        else:
            blocks.append(Block(reg.table, reg.address, reg.width, [reg]))
    return blocks


def _words_to_bytes(reg: Register, words: list[int]) -> bytes:
    if any(not 0 <= w <= 0xFFFF for w in words):
        raise MapError(f"{reg.id}: a register holds 0..65535")
    if reg.word_order == "little":
        words = list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    if reg.byte_order == "little":
        raw = b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))
    return raw


def decode(reg: Register, words: list[int]) -> float | None:
    """The point's value in BEMS's unit from its registers (or bit); None when the device's
    number is not one (NaN or infinity in a float register)."""
    if reg.bits or reg.type == "bool":
        return 1.0 if words[0] else 0.0
    fmt, n = TYPES[reg.type]
    if len(words) != n:
        raise MapError(f"{reg.id}: {reg.type} needs {n} registers, got {len(words)}")
    raw = struct.unpack(">" + fmt, _words_to_bytes(reg, list(words)))[0]
    value = (float(raw) * reg.scale + reg.offset) * UNITS[reg.unit][1]
    return value if math.isfinite(value) else None


def encode(reg: Register, value: float) -> list[int]:
    """The registers (or the bit, as [0] or [1]) that make `value` (in BEMS's unit)."""
    if reg.bits or reg.type == "bool":
        return [1 if value else 0]
    if not math.isfinite(value):
        raise MapError(f"{reg.id}: {value} is not a finite number")
    fmt, n = TYPES[reg.type]
    raw = (value / UNITS[reg.unit][1] - reg.offset) / reg.scale
    if fmt not in "fd":
        raw = round(raw)
        bits = 16 * n
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if fmt.islower() \
            else (0, (1 << bits) - 1)
        if not lo <= raw <= hi:
            raise MapError(f"{reg.id}: {value} does not fit a {reg.type}")
    try:
        data = struct.pack(">" + fmt, raw)
    except (struct.error, OverflowError):
        raise MapError(f"{reg.id}: {value} does not fit a {reg.type}") from None
    words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    # undo the device's orders (the same swaps, applied the other way round)
    if reg.byte_order == "little":
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if reg.word_order == "little":
        words.reverse()
    return words


def split(block: Block, values: list[int]) -> dict[str, float | None]:
    """Each member's value from a block's registers (or bits)."""
    if len(values) < block.count:
        raise MapError(f"{block.table} {block.start}: {len(values)} values for {block.count}")
    out = {}
    for reg in block.members:
        i = reg.address - block.start
        out[reg.id] = decode(reg, [int(v) for v in values[i:i + reg.width]])
    return out
