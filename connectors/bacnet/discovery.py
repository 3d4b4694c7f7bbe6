"""Discovery: unicast Who-Is, the object list (indexed when it cannot come whole), and each
object's name, type and units; a draft site-file section from what was found."""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.bacnet.gateway import BacnetError, BacnetGateway, BacnetRefused, DeviceTimeout, chunked, parse_address

_SKIP = ("device", "network-port")


def known_type(name: str) -> bool:
    """An object type the client library can decode (not a number, not proprietary)."""
    from bacpypes3.primitivedata import ObjectType
    from bacpypes3.vendor import ASHRAE_vendor_info

    if name.isdigit():
        return False
    try:
        return ASHRAE_vendor_info.get_object_class(int(ObjectType(name))) is not None
    except (ValueError, TypeError, KeyError):
        return False
_KINDS = {"analog-input": "temperature", "analog-value": "setpoint", "analog-output": "dimming",
          "binary-output": "status", "binary-input": "occupancy", "binary-value": "status",
          "multi-state-value": "mode", "multi-state-input": "other"}


def discover(gw: BacnetGateway, addresses: list[str], timeout_s: float = 2.0) -> list[dict]:
    """Every device that answers at the addresses, with its objects. Silent addresses are
    skipped (a scan hits many)."""
    return gw.call(_discover(gw, [parse_address(a) for a in addresses], timeout_s),
                   60 + 5 * len(addresses))


async def _discover(gw: BacnetGateway, addresses: list[str], timeout_s: float) -> list[dict]:
    async def one(addr: str) -> dict | None:
        try:
            info = await gw.adevice_info(addr, timeout_s)
        except (DeviceTimeout, BacnetRefused):
            return None
        objects = await gw.aobject_list(addr, timeout_s)
        rows = []
        listed = [o for o in objects if o.split(",")[0] not in _SKIP]
        # object types the client library does not know (newer standard types, proprietary
        # ones >= 128) are listed with a warning; reading them would abort everything
        unknown = [o for o in listed if not known_type(o.split(",")[0])]
        rows += [{"object": o, "name": "", "warning": "object type unknown to the client "
                  "(proprietary or newer): listed, not read"} for o in unknown]
        listed = [o for o in listed if o not in unknown]
        for batch in chunked(listed, 20):
            specs = [(o, ["object-name", "units"] if o.startswith("analog") else ["object-name"])
                     for o in batch]
            try:
                result = await gw.aread_multiple(addr, specs, timeout_s)
            except (BacnetError, Exception):  # noqa: BLE001 - one object must not abort all
                result = []
                for o, props in specs:
                    for prop in props:
                        try:
                            result.append((o, prop, await gw.aread(addr, o, prop,
                                                                   timeout=timeout_s)))
                        except (BacnetError, Exception) as err:  # noqa: BLE001
                            result.append((o, prop, err if isinstance(err, BacnetError) else
                                           BacnetError(f"{o} {prop}: {err!r}")))
            by_obj: dict[str, dict[str, Any]] = {o: {"object": o} for o in batch}
            for o, prop, value in result:
                if not isinstance(value, BacnetError) and o in by_obj:
                    key = "name" if prop == "object-name" else prop
                    by_obj[o][key] = str(value)
            rows += [{"name": "", **r} for r in by_obj.values()]
        return {"address": addr, "instance": info.instance, "name": info.name,
                "vendor": info.vendor, "max_apdu": info.max_apdu,
                "segmentation": info.segmentation, "objects": rows}

    found = await asyncio.gather(*(one(a) for a in addresses))
    return [f for f in found if f]


def site_section(found: list[dict]) -> str:
    """A draft [[devices]] / [[points]] section; kinds are guesses to review."""
    out = ["# Draft from `bems discover`: review every kind, unit, limit and writable flag.\n"]
    for dev in found:
        dev_id = f"dev{dev['instance']}"
        host, _, port = dev["address"].partition(":")
        out.append(f'[[devices]]\nid = "{dev_id}"\nname = "{dev["name"]}"\n'
                   f'address = "{dev["address"]}"\ninstance = {dev["instance"]}\n')
        for o in dev["objects"]:
            otype, inst = o["object"].split(",")
            if otype not in _KINDS:  # trend logs, schedules, calendars: not points
                out.append(f'# {o["object"]} {o.get("name", "")}: a trend log goes in a '
                           f'point\'s trend_log, a schedule/calendar in the device\'s '
                           f'schedule_object / calendar_object\n')
                continue
            unit = {"degrees-celsius": "degC", "kilowatts": "kW", "kilowatt-hours": "kWh",
                    "percent": "percent"}.get(o.get("units", ""), "")
            kind = _KINDS.get(otype, "other")
            if unit == "kW":
                kind = "power"
            elif unit == "kWh":
                kind = "energy"
            writable = otype in ("analog-value", "analog-output", "binary-output",
                                 "multi-state-value", "binary-value")
            line = (f'[[points]]\nid = "{dev_id}.{otype}.{inst}"\ndevice = "{dev_id}"\n'
                    f'object = "{o["object"]}"\nkind = "{kind}"\n'
                    f'name = "{o.get("name", "").replace(chr(34), "")}"\n')
            if unit:
                line += f'unit = "{unit}"\n'
            if writable:
                line += "writable = true\n"
            out.append(line)
    return "\n".join(out)
