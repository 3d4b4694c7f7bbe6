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


@modbus.command("read")
@click.argument("address")
@click.option("--unit", type=Number(1, 247, integer=True), default=1, show_default=True)
@click.option("--table", type=click.Choice(["coil", "discrete", "holding", "input"]),
              default="holding", show_default=True)
@click.option("--address", "register_address", default="0", show_default=True,
              help="0-based, or 40001 for holding register 0.")
@click.option("--count", type=Number(1, 125, integer=True), default=1, show_default=True,
              help="How many values of --type, one after the other.")
@click.option("--type", "kind", default="uint16", show_default=True,
              help="bool, int16, uint16, int32, uint32, int64, uint64, float32, float64.")
@click.option("--word-order", type=click.Choice(["big", "little"]), default="big",
              show_default=True)
@click.option("--byte-order", type=click.Choice(["big", "little"]), default="big",
              show_default=True)
@click.option("--timeout", type=Number(0.05, 60), default=2.0, show_default=True,
              help="Seconds to wait for an answer.")
@click.option("--json", "as_json", is_flag=True, help='Last line: {"values": [...]}.')
def modbus_read(address, unit, table, register_address, count, kind, word_order, byte_order,
                timeout, as_json) -> None:
    """Read registers (or coils) of one unit at ADDRESS (HOST:PORT).

    Example:

    \b
        bems modbus read 10.0.0.50:502 --unit 1 --address 40001 --type float32 --json
        bems modbus read 10.0.0.50:502 --unit 2 --table coil --address 0 --count 8
    """
    from connectors.modbus.client import read_device
    from connectors.modbus.codec import MapError, modbus_address, register

    if table in ("coil", "discrete"):
        kind = "bool"
    try:
        first = modbus_address(register_address, table)
        probe = register("v0", table, first, kind, word_order, byte_order)
        regs = [register(f"v{i}", table, first + i * probe.width, kind, word_order, byte_order)
                for i in range(count)]
    except MapError as err:
        raise click.BadParameter(str(err)) from None
    read = asyncio.run(read_device(_device(address, unit, timeout, regs)))
    if read.error and all(v is None for v in read.values.values()):
        raise BemsError(read.error)
    values = [read.values.get(r.id) for r in regs]
    for r, v in zip(regs, values):
        shown = f"{v:g}" if v is not None else f"no value: {read.bad.get(r.id, '')}"
        click.echo(f"{table} {r.address} ({kind}): {shown}")
    if as_json:
        click.echo(json.dumps({"values": values}))


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
    if not (lo.isdigit() and (not sep or hi.isdigit())):
        raise click.BadParameter(f"{units!r} is not a range like 1-247", param_hint="--units")
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
