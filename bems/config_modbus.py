"""The Modbus part of the site file: devices (HOST:PORT and a unit id), their points (register
map entries), the meter templates a device may name, and the check that no two points of a
device share registers. The checks themselves live in `bems.registers`."""

from __future__ import annotations

from typing import Any

from bems.site import POINT_KINDS, Device, Point
from bems.tomlreader import Path_, _one_of, _positive, _Reader


def _modbus_device(r: _Reader, p: Path_, d: Any) -> Device:
    """A Modbus TCP device: HOST:PORT (a meter's own port, or a gateway's) and a unit id."""
    host, port = "", 0
    address = r.get(d, p, "address", str)
    if address is not None:
        h, sep, port_s = address.strip().rpartition(":")
        from bems.registers import host_ok

        if not sep or not host_ok(h) or not (port_s.isascii() and port_s.isdigit()) or \
                len(port_s) > 5 or not 1 <= int(port_s) <= 65535:
            r.error(p + ("address",), f"a Modbus TCP device is HOST:PORT (e.g. 10.0.0.50:502), "
                                      f"got {address[:60]!r}")
        else:
            host, port = h, int(port_s)
    for key in ("instance", "schedule", "schedule_object", "calendar_object"):
        if key in d:
            r.error(p + (key,), f"{key} is for BACnet devices, not Modbus")
    return Device(id=r.get(d, p, "id", str), name=r.get(d, p, "name", str, ""), host=host,
                  port=port, instance=0, protocol="modbus",
                  unit=r.get(d, p, "unit", int, None,
                             lambda v: None if 1 <= v <= 247 else "a unit id is 1..247"),
                  timeout_s=r.get(d, p, "timeout_s", float, 2.0, _positive),
                  retries=r.get(d, p, "retries", int, 1,
                                lambda v: None if v >= 0 else "must be 0 or more"))


def _templated(r: _Reader, data: dict, devices: list) -> list[Point]:
    """The points of Modbus devices that name a meter template (ids DEVICE.KEY)."""
    from bems.registers import MapError, template_points

    out = []
    for (p, d), dev in zip(r.tables(data, "devices"), devices):
        if dev is None or dev.protocol != "modbus" or not isinstance(d, dict) or \
                "template" not in d:
            continue
        keys = r.get(d, p, "template_points", list, None, lambda v: None if v and all(
            isinstance(k, str) for k in v) else "a list of the template's point names")
        try:
            tps = template_points(r.get(d, p, "template", str, ""), dev.id, keys)
        except MapError as err:
            r.error(p + ("template",), str(err))
            continue
        out += [Point(id=tp.register.id, device=dev.id, object=f"{tp.register.table},"
                      f"{tp.register.address}", kind=tp.kind, name=f"{dev.name or dev.id} - "
                      f"{tp.vi}", unit=tp.register.si_unit, commandable=False,
                      register=_fields(tp.register)) for tp in tps]
    return out


def _fields(reg: Any) -> tuple:
    return (("table", reg.table), ("address", reg.address), ("type", reg.type),
            ("word_order", reg.word_order), ("byte_order", reg.byte_order),
            ("scale", reg.scale), ("offset", reg.offset), ("unit", reg.unit))


def _modbus_point(r: _Reader, p: Path_, d: Any) -> Point | None:
    """A Modbus point: `object = "holding,40001"` (TABLE,ADDRESS; 0-based or the 40001 form),
    `type`, `word_order`, `byte_order`, `scale`, `offset`, and `unit` the device's own (W, Wh…:
    BEMS stores kW, kWh). Writable holding registers and coils have no priority array."""
    from bems.registers import MapError, register

    d = r.table(d, p, ("id", "device", "object", "kind", "name", "unit", "writable", "min",
                       "max", "type", "word_order", "byte_order", "scale", "offset"))
    pid = r.get(d, p, "id", str)
    obj = r.get(d, p, "object", str)
    table, _, addr = (obj or "").partition(",")
    try:
        reg = register(pid or "?", table.strip(), addr.strip(),
                       r.get(d, p, "type", str, "uint16"), r.get(d, p, "word_order", str, "big"),
                       r.get(d, p, "byte_order", str, "big"), r.get(d, p, "scale", float, 1.0),
                       r.get(d, p, "offset", float, 0.0), r.get(d, p, "unit", str, ""))
    except MapError as err:
        r.error(p + ("object",), str(err).removeprefix(f"{pid}: "))
        reg = None
    writable = r.get(d, p, "writable", bool, False)
    if writable and reg is not None and reg.table in ("discrete", "input"):
        r.error(p + ("writable",), f"a Modbus {reg.table} is read-only")
    lo, hi = r.get(d, p, "min", float, None), r.get(d, p, "max", float, None)
    if lo is not None and hi is not None and lo >= hi:
        r.error(p + ("max",), f"max ({hi}) must be greater than min ({lo})")
    fields = () if reg is None else _fields(reg)
    return Point(id=pid, device=r.get(d, p, "device", str),
                 object=f"{reg.table},{reg.address}" if reg else None,
                 kind=r.get(d, p, "kind", str, check=_one_of(POINT_KINDS)),
                 name=r.get(d, p, "name", str, ""), unit=reg.si_unit if reg else "",
                 writable=writable, min=lo, max=hi, commandable=False, register=fields)


def _check_modbus_maps(r: _Reader, devices: list, points: list) -> None:
    """Two points of one Modbus device on the same registers."""
    from bems.registers import check_map

    for dev in devices:
        if dev is None or dev.protocol != "modbus":
            continue
        mine = [(i, pt) for i, pt in enumerate(points)
                if pt is not None and pt.device == dev.id and pt.register]
        for problem in check_map([pt.modbus() for _, pt in mine]):
            i = next(i for i, pt in mine if problem.startswith(pt.id + " "))
            r.error(("points", i, "object"), problem)
