"""Modbus on the wire: a device's points read in few requests (`coalesce`), registers to
numbers and back (`decode`, `encode`). Pure: no socket here (connectors/modbus/client.py does
the talking). The register map itself (`Register`, its checks) is part of the site model:
bems/registers.py.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from bems.registers import (LAST_ADDRESS, MAX_BITS, MAX_REGISTERS, ORDERS, TABLES,  # noqa: F401
                            TYPES, UNITS, MapError, Register, check_map, modbus_address, register)

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
    return _scaled(reg, _STRUCTS[reg.type].unpack(_words_to_bytes(reg, list(words)))[0])


_STRUCTS = {t: struct.Struct(">" + fmt) for t, (fmt, _n) in TYPES.items()}


def _scaled(reg: Register, raw: float) -> float | None:
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
    if TABLES[block.table][1]:
        for reg in block.members:
            out[reg.id] = 1.0 if values[reg.address - block.start] else 0.0
        return out
    # the block's registers as bytes once; each big-endian member is one unpack from them
    # (a meter of 40 values is one request: decoding must not cost more than asking)
    try:
        raw = struct.pack(f">{block.count}H", *values[:block.count])
    except (struct.error, TypeError):
        raise MapError(f"{block.table} {block.start}: a register holds 0..65535") from None
    for reg in block.members:
        i = reg.address - block.start
        if reg.word_order == "big" and reg.byte_order == "big" and reg.type != "bool":
            out[reg.id] = _scaled(reg, _STRUCTS[reg.type].unpack_from(raw, 2 * i)[0])
        else:
            out[reg.id] = decode(reg, [int(v) for v in values[i:i + reg.width]])
    return out
