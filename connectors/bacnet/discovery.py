"""Discovery: Who-Is (global or ranged broadcast, one remote network, or unicast), the routers
and the networks behind them, each device's object list (indexed when it cannot come whole) and
each object's name, type and units; a draft site file from what was found.

Nothing a device answers may abort the rest: an object type the client library cannot decode
(proprietary, or newer than the library) is read with the standard datatypes of the properties
asked for, and a property that still fails is skipped with a named warning on that object.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from connectors.bacnet.gateway import (
    _TOO_BIG, BacnetError, BacnetGateway, BacnetRefused, DeviceTimeout, chunked, known_type,
    parse_address,
)
from bems.site import routed_parts

_SKIP = ("device", "network-port")


def discover(gw: BacnetGateway, addresses: list[str] = (), broadcast: bool = False,
             low: int | None = None, high: int | None = None, networks: list[int] = (),
             wait_s: float = 3.0, timeout_s: float = 3.0) -> list[dict]:
    """The devices `survey` finds, without the routers."""
    return survey(gw, addresses, broadcast, low, high, networks, wait_s, timeout_s)["devices"]


def survey(gw: BacnetGateway, addresses: list[str] = (), broadcast: bool = False,
           low: int | None = None, high: int | None = None, networks: list[int] = (),
           wait_s: float = 3.0, timeout_s: float = 3.0) -> dict:
    """Every device that answers, with its objects, and (when broadcasting) the routers and
    the networks behind them, asked at the same time: {"routers": {...}, "devices": [...]}.
    Who-Is goes by global broadcast (`broadcast`), to each remote network in `networks`, and
    unicast to each of `addresses` (silent ones are skipped: a scan hits many); `low`..`high`
    limits device instances."""
    addresses = [parse_address(a) for a in addresses]

    async def both() -> tuple:
        asked = gw.arouters(min(wait_s, 2.0)) if broadcast or networks else _nothing()
        return await asyncio.gather(asked, _discover(gw, addresses, broadcast, low, high,
                                                     list(networks), wait_s, timeout_s))
    nets, found = gw.call(both(), wait_s * (1 + len(networks)) + 120 + 5 * len(addresses))
    return {"routers": nets, "devices": found}


async def _nothing() -> dict:
    return {}


async def _discover(gw: BacnetGateway, addresses: list[str], broadcast: bool,
                    low: int | None, high: int | None, networks: list[int], wait_s: float,
                    timeout_s: float) -> list[dict]:
    targets: dict[str, None] = dict.fromkeys(addresses)
    if broadcast:
        for iam in await gw.awho_is(None, low, high, wait_s):
            targets.setdefault(iam.address)
    for net in networks:
        for iam in await gw.awho_is(f"{net}:*", low, high, wait_s):
            targets.setdefault(iam.address)
    found = await asyncio.gather(*(_device(gw, a, low, high, timeout_s) for a in targets))
    return [f for f in found if f]


async def _device(gw: BacnetGateway, addr: str, low: int | None, high: int | None,
                  timeout_s: float) -> dict | None:
    try:
        info = await gw.adevice_info(addr, timeout_s)
    except (DeviceTimeout, BacnetRefused):
        return None
    if low is not None and not low <= info.instance <= (high if high is not None else low):
        return None
    warnings: list[str] = []
    try:
        objects = await gw.aobject_list(addr, timeout_s)
    except BacnetError as err:
        objects = []
        warnings.append(f"object list unreadable: {err}")
    listed = [o for o in objects if o.split(",")[0] not in _SKIP]
    rows = await _describe(gw, addr, listed, info.max_apdu, info.segments, timeout_s)
    routed = routed_parts(addr)
    return {"address": addr, "instance": info.instance, "name": info.name,
            "vendor": info.vendor, "max_apdu": info.max_apdu,
            "segmentation": info.segmentation, "network": routed[0] if routed else None,
            "object_list": gw.object_list_read.get(addr, ""), "warnings": warnings,
            "objects": rows}


def _props(obj: str) -> list[str]:
    """What discovery reads of an object; of a writable one, its relinquish default, which
    every commandable object has and a non-commandable one (no priority array) lacks."""
    otype = obj.split(",")[0]
    props = ["object-name", "units"] if otype.startswith("analog") else ["object-name"]
    if otype in _WRITABLE:
        props.append("relinquish-default")
    return props


async def _describe(gw: BacnetGateway, addr: str, objects: list[str], max_apdu: int,
                    segments: bool, timeout_s: float) -> list[dict]:
    """Name (and units) of every object: ReadPropertyMultiple in batches the device can
    answer, halved on "too big", one by one if it has no ReadPropertyMultiple."""
    known = [o for o in objects if known_type(o.split(",")[0])]
    unknown = [o for o in objects if o not in known]
    per = max(1, (max_apdu - 20) // 64) * (4 if segments else 1)  # ~64 bytes an object
    by_obj: dict[str, dict[str, Any]] = {o: {"object": o, "name": ""} for o in objects}
    rpm = [True]

    async def batch(objs: list[str]) -> None:
        specs = [(o, _props(o)) for o in objs]
        if rpm[0]:
            try:
                for o, prop, value in await gw.aread_multiple(addr, specs, timeout_s):
                    if o in by_obj:
                        _keep(by_obj[o], prop, value)
                return
            except BacnetRefused as err:
                if err.error_code in _TOO_BIG and len(objs) > 1:
                    half = len(objs) // 2
                    await batch(objs[:half])
                    await batch(objs[half:])
                    return
                if err.error_code in ("unrecognized-service", "service-request-denied"):
                    rpm[0] = False
            except BacnetError:
                pass
        for o, props in specs:  # one by one: one bad object must not cost the batch
            for prop in props:
                try:
                    _keep(by_obj[o], prop, await gw.aread(addr, o, prop, timeout=timeout_s))
                except BacnetError as err:
                    _keep(by_obj[o], prop, err)

    for part in chunked(known, per):
        await batch(list(part))
    if unknown:
        from bacpypes3.primitivedata import CharacterString

        for o in unknown:
            row = by_obj[o]
            try:
                row["name"] = str(await gw.aread_raw(addr, o, "object-name", CharacterString,
                                                     timeout=timeout_s))
            except BacnetError as err:
                row["warning"] = f"object-name unreadable: {err}"
            row.setdefault("warning", f"object type {o.split(',')[0]} is unknown to the "
                                      "client (proprietary or newer): name only, not a point")
    return [by_obj[o] for o in objects]


def _keep(row: dict, prop: str, value: Any) -> None:
    if prop == "relinquish-default":  # present: commandable; unknown-property: not
        if isinstance(value, BacnetRefused):
            row["commandable"] = False if value.error_code == "unknown-property" else None
        elif not isinstance(value, BacnetError):
            row["commandable"] = True
        return
    key = "name" if prop == "object-name" else prop
    if isinstance(value, BacnetError):
        if key == "name":
            row["warning"] = f"object-name unreadable: {value}"
        return
    row[key] = str(value)


# --- the draft site file ---------------------------------------------------------------------

# (pattern over the object name, lower case) → kind; first match wins; English and Vietnamese
_NAME_KINDS = (
    (r"outdoor|outside|oat\b|ngoài trời", "outdoor_temperature"),
    (r"humid|\brh\b|độ ẩm", "humidity"),
    (r"set ?point|\bsp\b|\bstpt\b|nhiệt độ đặt|cài đặt", "setpoint"),
    (r"temp|nhiệt độ|\bzat\b|\brat\b|\bsat\b", "temperature"),
    (r"occup|presence|\bocc\b|\bpir\b|có người", "occupancy"),
    (r"dimm|level|độ sáng", "dimming"),
    (r"light|lamp|đèn|chiếu sáng", "lighting"),
    (r"damper|outdoor air|\boa\b|gió tươi", "outdoor_air"),
    (r"energy|kwh|điện năng", "energy"),
    (r"power|\bkw\b|demand|công suất", "power"),
    (r"mode|chế độ", "mode"),
    (r"start|stop|on.?off|run|status|command|bật|tắt|trạng thái", "status"),
)
_UNIT_KINDS = {"kilowatts": "power", "kilowatt-hours": "energy", "percent-relative-humidity":
               "humidity"}
_UNITS = {"degrees-celsius": "degC", "kilowatts": "kW", "kilowatt-hours": "kWh",
          "percent": "percent", "percent-relative-humidity": "percent"}
_POINT_TYPES = ("analog-input", "analog-output", "analog-value", "binary-input",
                "binary-output", "binary-value", "multi-state-input", "multi-state-output",
                "multi-state-value", "lighting-output", "binary-lighting-output")
_WRITABLE = ("analog-value", "analog-output", "binary-output", "binary-value",
             "multi-state-value", "multi-state-output", "lighting-output",
             "binary-lighting-output")


def guess_kind(otype: str, name: str, units: str = "") -> str:
    """The point kind an object most likely is, from its units, name and type."""
    if units in _UNIT_KINDS:
        return _UNIT_KINDS[units]
    low = name.lower()
    for pattern, kind in _NAME_KINDS:
        if re.search(pattern, low):
            if kind in ("temperature", "setpoint", "outdoor_temperature") and \
                    not otype.startswith("analog"):
                continue
            return "dimming" if otype == "lighting-output" and kind == "lighting" else kind
    if otype in ("lighting-output",):
        return "dimming"
    if otype == "binary-lighting-output":
        return "lighting"
    if otype.startswith("binary"):
        return "status"
    if otype.startswith("multi-state"):
        return "mode"
    return "other"


def _toml(text: str) -> str:
    """A TOML basic string's contents: quotes, backslashes and control characters escaped."""
    out = []
    for ch in str(text)[:200]:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def site_section(found: list[dict], bacnet: dict | None = None) -> str:
    """A draft site file: a [site] and [bacnet] skeleton (the network BEMS searched from),
    then [[devices]] and [[points]], every kind a guess marked for review. It passes
    `bems check-config` as written; a person completes it (and decides what BEMS may
    write)."""
    b = bacnet or {}
    out = ["# Draft from `bems discover`: every point is marked `# REVIEW` — check its kind,\n"
           "# unit, limits, and whether BEMS may write it; delete what BEMS does not need.\n"
           "# Routed devices are NETWORK:MAC (the network number behind the BACnet router).\n"
           "# Reference for every table and field: README.md, \"Site file reference\".\n",
           '[site]\nname = "REVIEW: the centre\'s name"\ntimezone = "Asia/Ho_Chi_Minh"\n'
           "# latitude = 20.86\n# longitude = 106.68\n",
           "[bacnet]  # the network BEMS searched from (its own BACnet/IP port)\n"
           f'interface = "{_toml(str(b.get("interface", "127.0.0.1/8")))}"\n'
           f'port = {int(b.get("port", 47808))}\n'
           + (f'bbmd = "{_toml(str(b["bbmd"]))}"\n' if b.get("bbmd") else "")]
    for dev in found:
        dev_id = f"dev{dev['instance']}"
        out.append(f'[[devices]]\nid = "{dev_id}"\nname = "{_toml(dev["name"])}"\n'
                   f'address = "{dev["address"]}"\ninstance = {dev["instance"]}\n')
        for w in dev.get("warnings", []):
            out.append(f"# {dev_id}: {_toml(w)}\n")
        for o in dev["objects"]:
            otype, inst = o["object"].split(",")
            name = o.get("name", "")
            if otype not in _POINT_TYPES:
                note = o.get("warning") or ("a trend log goes in a point's trend_log, a "
                                            "schedule/calendar in the device's "
                                            "schedule_object / calendar_object")
                out.append(f"# {o['object']} {_toml(name)}: {_toml(note)}\n")
                continue
            unit = _UNITS.get(o.get("units", ""), "")
            kind = guess_kind(otype, name, o.get("units", ""))
            line = (f'[[points]]  # REVIEW: kind guessed from '
                    f'{"units" if o.get("units") in _UNIT_KINDS else "name and type"}\n'
                    f'id = "{dev_id}.{otype}.{inst}"\ndevice = "{dev_id}"\n'
                    f'object = "{o["object"]}"\nkind = "{kind}"\nname = "{_toml(name)}"\n')
            if unit:
                line += f'unit = "{unit}"\n'
            if otype in _WRITABLE:
                line += "# writable = true  # REVIEW: only if BEMS should command it\n"
                if o.get("commandable") is False:
                    line += ("# commandable = false  # no priority array: BEMS writes the "
                             "value itself and restores the one it replaced\n")
            out.append(line)
    return "\n".join(out)
