"""`bems modbus …`: field tools for Modbus TCP devices (meters, gateways): read registers the
way a site file would name them, and find which unit ids answer."""

from __future__ import annotations

import asyncio
import json

import click

from bems.cli import main
from bems.cli.common import Number
from bems.errors import BemsError


@main.group()
def modbus() -> None:
    """Modbus TCP: read a device's registers, scan a gateway's unit ids.

    Addresses are 0-based as on the wire; the 40001 form of meter manuals is accepted.

    Example:

    \b
        bems modbus read 192.168.1.50:502 --unit 1 --table holding --address 40001 \\
            --type float32 --word-order little
        bems modbus scan 192.168.1.50:502 --units 1-10
    """


def _device(address: str, unit: int, timeout: float, registers=()):
    from connectors.modbus.client import ModbusDevice, ModbusError, parse_host_port

    try:
        host, port = parse_host_port(address)
    except ModbusError as err:
        raise BemsError(str(err)) from None
    return ModbusDevice("cli", host, port, unit, timeout, 1, tuple(registers))


def _register_opts(f):
    for opt in reversed([
        click.option("--unit", type=Number(1, 247, integer=True), default=1, show_default=True),
        click.option("--table", type=click.Choice(["coil", "discrete", "holding", "input"]),
                     default="holding", show_default=True),
        click.option("--address", "register_address", default="0", show_default=True,
                     help="0-based, or 40001 for holding register 0."),
        click.option("--type", "kind", default="uint16", show_default=True,
                     help="bool, int16, uint16, int32, uint32, int64, uint64, float32, "
                          "float64."),
        click.option("--word-order", type=click.Choice(["big", "little"]), default="big",
                     show_default=True),
        click.option("--byte-order", type=click.Choice(["big", "little"]), default="big",
                     show_default=True),
        click.option("--timeout", type=Number(0.05, 60), default=2.0, show_default=True,
                     help="Seconds to wait for an answer."),
    ]):
        f = opt(f)
    return f


def _registers(table, register_address, kind, word_order, byte_order, count=1):
    from connectors.modbus.codec import MapError, modbus_address, register

    if table in ("coil", "discrete"):
        kind = "bool"
    try:
        first = modbus_address(register_address, table)
        probe = register("v0", table, first, kind, word_order, byte_order)
        return [register(f"v{i}", table, first + i * probe.width, kind, word_order, byte_order)
                for i in range(count)]
    except MapError as err:
        raise click.BadParameter(str(err)) from None


@modbus.command("read")
@click.argument("address")
@_register_opts
@click.option("--count", type=Number(1, 125, integer=True), default=1, show_default=True,
              help="How many values of --type, one after the other.")
@click.option("--template", default=None, metavar="NAME",
              help="Read every point of a meter template instead (bems modbus templates).")
@click.option("--json", "as_json", is_flag=True, help='Last line: {"values": [...]}.')
def modbus_read(address, unit, table, register_address, kind, word_order, byte_order,
                timeout, count, template, as_json) -> None:
    """Read registers (or coils) of one unit at ADDRESS (HOST:PORT).

    Example:

    \b
        bems modbus read 10.0.0.50:502 --unit 1 --address 40001 --type float32 --json
        bems modbus read 10.0.0.50:502 --unit 2 --table coil --address 0 --count 8
        bems modbus read 10.0.0.50:502 --unit 1 --template schneider-pm5000
    """
    from connectors.modbus.client import read_device

    if template is not None:
        return _read_template(address, unit, timeout, template, as_json)
    regs = _registers(table, register_address, kind, word_order, byte_order, count)
    kind = regs[0].type
    read = asyncio.run(read_device(_device(address, unit, timeout, regs)))
    if read.error and all(v is None for v in read.values.values()):
        raise BemsError(read.error)
    values = [read.values.get(r.id) for r in regs]
    for r, v in zip(regs, values):
        shown = f"{v:g}" if v is not None else f"no value: {read.bad.get(r.id, '')}"
        click.echo(f"{table} {r.address} ({kind}): {shown}")
    if as_json:
        click.echo(json.dumps({"values": values}))


def _read_template(address, unit, timeout, name, as_json) -> None:
    """Every point of a template, in BEMS's units: is this meter what the template says?"""
    from bems.registers import MapError, template_points
    from connectors.modbus.client import read_device

    try:
        points = template_points(name, "meter")
    except MapError as err:
        raise click.BadParameter(str(err), param_hint="--template") from None
    read = asyncio.run(read_device(_device(address, unit, timeout,
                                           [p.register for p in points])))
    if all(v is None for v in read.values.values()):  # not this meter, or not a meter
        raise BemsError(read.error or next(iter(read.bad.values()), "no answer"))
    values = {}
    for p in points:
        r, v = p.register, read.values.get(p.register.id)
        values[p.key] = v
        shown = f"{v:g} {r.si_unit}" if v is not None else \
            f"no value: {read.bad.get(r.id, '')}"
        click.echo(f"{p.key:16} {r.table} {r.address} ({r.type}, {r.unit or '-'}): {shown}")
    if as_json:
        click.echo(json.dumps({"values": values}))


@modbus.command("templates")
@click.argument("name", required=False)
def modbus_templates(name) -> None:
    """The meter templates a site file's device may name (template = "NAME"), with the source
    of each map; with NAME, its points.

    Example:

    \b
        bems modbus templates
        bems modbus templates schneider-pm5000
    """
    from bems.registers import meter_templates

    known = meter_templates()
    if name is None:
        for t in known.values():
            click.echo(f"{t.name:20} {t.title}\n{'':20} source: {t.source}")
        return
    if name not in known:
        raise click.BadParameter(f"no meter template {name!r}; known: "
                                 f"{', '.join(sorted(known))}", param_hint="NAME")
    t = known[name]
    click.echo(f"{t.title}\nsource: {t.source}")
    for p in t.points:
        r = p.register
        click.echo(f"  {p.key:16} {r.table:8} {r.address:5} (register {r.address + 1}) "
                   f"{r.type:8} {r.unit or '-':4} {p.kind:7} {p.en} / {p.vi}")


@modbus.command("scan")
@click.argument("address")
@click.option("--units", default="1-247", show_default=True, help="A range of unit ids, A-B.")
@click.option("--timeout", type=Number(0.05, 10), default=0.5, show_default=True,
              help="Seconds to wait for each unit.")
def modbus_scan(address, units, timeout) -> None:
    """Which unit ids answer at ADDRESS (HOST:PORT), e.g. behind a Modbus gateway.

    Example:

    \b
        bems modbus scan 10.0.0.50:502 --units 1-32
    """
    from connectors.modbus.client import ModbusError, scan

    lo, sep, hi = units.partition("-")
    if not (units.isascii() and len(units) <= 7 and lo.isdigit() and
            (not sep or hi.isdigit())):
        raise click.BadParameter(f"{units[:20]!r} is not a range like 1-247",
                                 param_hint="--units")
    lo_i, hi_i = int(lo), int(hi if sep else lo)
    if not 1 <= lo_i <= hi_i <= 247:
        raise click.BadParameter("unit ids are 1..247", param_hint="--units")
    dev = _device(address, 1, timeout)
    try:
        found = asyncio.run(scan(dev.host, dev.port, range(lo_i, hi_i + 1), timeout))
    except ModbusError as err:
        raise BemsError(str(err)) from None
    click.echo(f"{len(found)} unit(s) answer at {dev.address}: "
               + (", ".join(map(str, found)) or "none"))


def _writer(address, unit, table, register_address, kind, word_order, byte_order, timeout,
            site_file, db_path):
    """The Writer over a Modbus bus for one register: the site file's point there (its limits),
    else an ad-hoc writable point. Modbus has no priority array: the Writer keeps the value it
    replaces, and `bems modbus release` restores it."""
    import dataclasses

    from bems.config import load_site
    from bems.control import Writer
    from bems.site import Device, Point
    from bems.storage import Store
    from connectors.modbus.fieldbus import ModbusFieldBus

    reg = _registers(table, register_address, kind, word_order, byte_order)[0]
    if reg.table in ("discrete", "input"):
        raise click.BadParameter(f"a Modbus {reg.table} is read-only", param_hint="--table")
    dev = _device(address, unit, timeout)
    site = load_site(site_file)
    where, obj = f"{dev.host}:{dev.port}/{dev.unit}", f"{reg.table},{reg.address}"
    point = next((p for p in site.points if p.register and p.object == obj
                  and site.device(p.device).address == where), None)
    if point is None:
        device = Device(id=f"cli:{where}", name="", host=dev.host, port=dev.port, instance=0,
                        protocol="modbus", unit=dev.unit, timeout_s=timeout, retries=1)
        point = Point(id=f"{where}/{obj}", device=device.id, object=obj, kind="other",
                      writable=True, commandable=False, unit=reg.si_unit, register=tuple(
                          (k, getattr(reg, k)) for k in ("table", "address", "type",
                                                         "word_order", "byte_order", "scale",
                                                         "offset", "unit")))
        site = dataclasses.replace(site, devices=site.devices + (device,),
                                   points=site.points + (point,))
    bus = ModbusFieldBus(site)
    bus.start()
    return Writer(site, bus, Store(db_path, site.timezone)), bus, point.id


def _write_opts(f):
    from bems.cli.common import db_option, site_option

    f = click.option("--reason", default="command line", show_default=True,
                     help="Why, for the ledger.")(f)
    f = db_option(help="Ledger (SQLite).")(f)
    return site_option(help="Site file whose point limits apply (default: the demo site).")(f)


@modbus.command("write")
@click.argument("address")
@click.argument("value", type=Number())
@_register_opts
@_write_opts
def modbus_write(address, value, unit, table, register_address, kind, word_order, byte_order,
                 timeout, site_file, db_path, reason) -> None:
    """Write a holding register set (or a coil) through the one Writer: the site file's
    limits, read-back, the ledger; the value it replaced is kept for `bems modbus release`.

    Example:

    \b
        bems modbus write 10.0.0.50:502 80 --unit 4 --address 40011 --type int16
    """
    from bems.cli.field import _outcome_line
    from bems.control import WriteIntent

    writer, bus, pid = _writer(address, unit, table, register_address, kind, word_order,
                               byte_order, timeout, site_file, db_path)
    try:
        r = writer.apply(WriteIntent(pid, value, reason, source="cli"))
    finally:
        writer.store.close()
        bus.stop()
    click.echo(_outcome_line(pid, r))
    if not r.ok:
        raise SystemExit(1)


@modbus.command("release")
@click.argument("address")
@_register_opts
@_write_opts
def modbus_release(address, unit, table, register_address, kind, word_order, byte_order,
                   timeout, site_file, db_path, reason) -> None:
    """Give back a register BEMS wrote: the value it replaced (from the ledger) is written
    again and read back.

    Example:

    \b
        bems modbus release 10.0.0.50:502 --unit 4 --address 40011 --type int16
    """
    from bems.cli.field import _outcome_line

    writer, bus, pid = _writer(address, unit, table, register_address, kind, word_order,
                               byte_order, timeout, site_file, db_path)
    try:
        r = writer.release(pid, "cli", reason)
    finally:
        writer.store.close()
        bus.stop()
    click.echo(_outcome_line(pid, r))
    if not r.ok:
        raise SystemExit(1)
