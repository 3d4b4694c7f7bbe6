"""The field tools: the simulated centre, discovery, read / write / release a point,
trend-log backfill, controllers' own schedules, the closed-loop simulation."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from bems.cli import main
from bems.cli.common import (LocalTime, Number, _apply, _client_port, _date, _gateway, _interface,
                             _parse_start, _strategy_params, db_option, site_option)
from bems.config import load_site
from bems.storage import Store


@main.command()
@site_option
@click.option("--speed", type=Number(0, 3600), default=1.0, show_default=True,
              help="Simulated seconds per wall second (60: a minute per second; 0: unpaced).")
@click.option("--start", "start", default=None, type=LocalTime(),
              help="Simulated start, local time YYYY-MM-DD[THH:MM] (default: now).")
@click.option("--history-days", type=Number(0, 400, integer=True), default=0, show_default=True,
              help="First simulate this many days before the start into --db, unpaced.")
@db_option(default=None, help="SQLite file for --history-days.")
@click.option("--fault", "faults", multiple=True,
              help="Inject a fault: DEVICE:offline, DEVICE:slow=S, POINT:stuck=V, METER:reset.")
def simulator(site_file: Path | None, speed: float, start: dt.datetime | None, history_days: int,
              db_path: Path | None, faults: tuple[str, ...]) -> None:
    """Serve the virtual administrative centre: EnergyPlus physics as BACnet/IP devices.

    Each device listens on its own UDP port on loopback (see the site file). While it runs,
    type a fault on standard input (e.g. fc2:offline, fc2:online) or `stop`.

    Example:

    \b
        bems simulator --speed 60
        bems simulator --start 2026-07-06T07:00 --history-days 14 --db sim.sqlite
    """
    from connectors.simulator.run import serve

    site = load_site(site_file)
    start_local = _parse_start(start, site.tz)
    serve(site, start_local, speed, list(faults), lambda m: click.echo(m),
          history_days=history_days, db=db_path, read_stdin=not sys.stdin.isatty())


@main.command()
@click.option("--address", "addresses", multiple=True,
              help="A device's address (unicast Who-Is): HOST:PORT, or NETWORK:MAC behind a "
                   "BACnet router (2001:5); repeat for several.")
@click.option("--scan", default=None, help="HOST:FIRST-LAST: unicast Who-Is to a port range.")
@click.option("--broadcast", is_flag=True,
              help="Global Who-Is: every device on this network, on the subnets joined by "
                   "BBMDs and on the networks behind routers (the default when no --address, "
                   "--scan or --network is given).")
@click.option("--network", "networks", multiple=True, type=Number(1, 65534, integer=True),
              help="Who-Is to one remote BACnet network (behind a router); repeatable.")
@click.option("--range", "instance_range", default=None, metavar="LOW-HIGH",
              help="Only devices whose instance is in LOW-HIGH (a ranged Who-Is).")
@click.option("--wait", type=Number(0.5, 60), default=3.0, show_default=True,
              help="Seconds to collect I-Am answers to a broadcast.")
@click.option("--bbmd", default=None, metavar="HOST:PORT",
              help="Register as a foreign device with this BBMD first (BEMS on another subnet "
                   "than the controllers).")
@site_option(help="Take the client's network from this site file's [bacnet] table.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--site-section", is_flag=True, help="Print a draft site file (TOML) to review.")
@_client_port
def discover(addresses: tuple[str, ...], scan: str | None, broadcast: bool,
             networks: tuple[int, ...], instance_range: str | None, wait: float,
             bbmd: str | None, site_file: Path | None, as_json: bool, site_section: bool,
             bacnet_port: int | None) -> None:
    """Find BACnet devices and list their objects (names, types, units).

    Example:

    \b
        bems discover --interface 192.168.10.5/24 --site-section > draft.toml
        bems discover --broadcast --range 1000-1999 --json
        bems discover --network 2001 --bbmd 192.168.20.1:47808
        bems discover --address 127.0.0.1:47821 --address 2001:5
        bems discover --scan 127.0.0.1:47820-47823
    """
    import json as _json
    import re

    from bems.site import canonical_ip_address
    from connectors.bacnet.discovery import survey
    from connectors.bacnet.discovery import site_section as draft
    from connectors.bacnet.gateway import BacnetError, parse_address

    targets = list(addresses)
    if scan:
        host, _, ports = scan.rpartition(":")
        try:
            lo, _, hi = ports.partition("-")
            first, last = int(lo), int(hi or lo)
            if not (0 < first <= last < 65536 and last - first < 1024):
                raise ValueError
            targets += [f"{host}:{p}" for p in range(first, last + 1)]
        except ValueError:
            raise click.BadParameter(f"{scan[:60]!r}: use HOST:FIRST-LAST (at most 1024 ports)",
                                     param_hint="--scan") from None
    try:
        targets = [parse_address(t) for t in targets]
    except BacnetError as err:
        raise click.BadParameter(str(err), param_hint="--address") from None
    low = high = None
    if instance_range:
        m = re.fullmatch(r"\s*(\d{1,7})\s*-\s*(\d{1,7})\s*", instance_range)
        if not m or not int(m.group(1)) <= int(m.group(2)) <= 4194302:
            raise click.BadParameter(f"{instance_range[:40]!r}: use LOW-HIGH, device "
                                     "instances 0..4194302", param_hint="--range")
        low, high = int(m.group(1)), int(m.group(2))
    if bbmd is not None and canonical_ip_address(bbmd) is None:
        raise click.BadParameter(f"{bbmd[:60]!r}: use IPV4-ADDRESS:PORT",
                                 param_hint="--bbmd")
    broadcast = broadcast or not (targets or networks)
    site = load_site(site_file) if site_file else None
    with _gateway(bacnet_port, site, canonical_ip_address(bbmd) if bbmd else None) as gw:
        if gw.registered is False:
            click.echo(f"warning: the BBMD {gw.bbmd} did not accept BEMS as a foreign device; "
                       "only this subnet is searched", err=True)
        result = survey(gw, targets, broadcast=broadcast, low=low, high=high,
                        networks=list(networks), wait_s=wait)
    nets, found = result["routers"], result["devices"]
    if as_json:
        click.echo(_json.dumps({"routers": nets, "devices": found}, indent=2,
                               ensure_ascii=False))
    elif site_section:
        own = site.bacnet if site is not None else None
        click.echo(draft(found, {
            "interface": _interface() or (own.interface if own else "127.0.0.1/8"),
            "port": bacnet_port or (own.port if own else 47808),
            "bbmd": canonical_ip_address(bbmd) if bbmd else (own.bbmd if own else None)}))
    else:
        for router, reach in sorted(nets.items()):
            click.echo(f"router {router} to network(s) {', '.join(map(str, reach))}")
        for dev in found:
            click.echo(f"device {dev['instance']} {dev['name']!r} at {dev['address']} "
                       f"({dev['vendor']}, max APDU {dev['max_apdu']}, {dev['segmentation']}): "
                       f"{len(dev['objects'])} objects")
            for w in dev["warnings"]:
                click.echo(f"  warning: {w}")
            for o in dev["objects"]:
                warn = f"  [{o['warning']}]" if o.get("warning") else ""
                click.echo(f"  {o['object']:<24} {o['name']:<50} {o.get('units') or ''}{warn}")
    if not found:
        raise click.ClickException("no device answered")


@main.command()
@click.argument("address")
@click.argument("obj", metavar="OBJECT")
@click.argument("prop", metavar="PROPERTY", default="present-value")
@_client_port
def read(address: str, obj: str, prop: str, bacnet_port: int | None) -> None:
    """Read one property of one object.

    Example:

    \b
        bems read 127.0.0.1:47821 analog-input,1 present-value
        bems read 127.0.0.1:47821 analog-value,1 priority-array
    """
    from bems.site import canonical_object
    from connectors.bacnet.gateway import parse_address, plain

    addr, obj = parse_address(address), canonical_object(obj) or obj
    with _gateway(bacnet_port) as gw:
        if prop == "priority-array":
            slots = gw.priority_array(addr, obj)
            click.echo(", ".join(f"{k}: {v}" for k, v in sorted(slots.items())) or "(empty)")
        else:
            value = gw.read(addr, obj, prop)
            click.echo(plain(value) if not isinstance(value, (list, tuple)) else value)


def _adhoc_writer(site_file: Path | None, db_path: Path, address: str, obj: str, gw):
    """The writer for a command-line write: the site's point at that address and object,
    however they are spelled (`localhost:47821`, `analog-value, 002`), with its limits and
    priority; else an ad-hoc writable point at the site's priority."""
    import dataclasses

    from bems.control import Writer
    from bems.site import (Device, Point, address_problem, canonical_device_address,
                           canonical_object, routed_parts)

    site = load_site(site_file)
    addr, obj_c = canonical_device_address(address), canonical_object(obj)
    if addr is None:
        raise click.BadParameter(address_problem(address), param_hint="ADDRESS")
    if obj_c is None:
        raise click.BadParameter(f"{obj!r}: expected TYPE,INSTANCE (e.g. analog-value,1)",
                                 param_hint="OBJECT")
    for p in site.points:
        if site.device(p.device).address == addr and p.object == obj_c:
            return Writer(site, gw, Store(db_path, site.timezone)), p.id
    routed = routed_parts(addr)
    if routed:
        dev = Device(id=f"cli:{addr}", name="", host="", port=0, instance=0,
                     network=routed[0], mac=routed[1])
    else:
        host, port = addr.rsplit(":", 1)
        dev = Device(id=f"cli:{addr}", name="", host=host, port=int(port), instance=0)
    point = Point(id=f"{addr}/{obj_c}", device=dev.id, object=obj_c, kind="other",
                  writable=True)
    site = dataclasses.replace(site, devices=site.devices + (dev,), points=site.points + (point,))
    return Writer(site, gw, Store(db_path, site.timezone)), point.id


def _audit_above_own(writer, above_own: bool, action: str, pid: str, priority: int,
                     value: float | None, reason: str) -> None:
    if above_own:
        writer.store.audit("cli", f"{action}.above_own_priority",
                           {"point": pid, "priority": priority, "value": value,
                            "own_priority": writer.site.control.write_priority,
                            "reason": reason})


_write_opts = [
    click.option("--priority", type=Number(1, 16, integer=True), required=True,
                 help="BACnet priority (1-16)."),
    site_option(help="Site file whose point limits apply (default: the demo site)."),
    db_option(help="Ledger (SQLite)."),
    click.option("--reason", default="command line", show_default=True,
                 help="Why, for the ledger."),
    click.option("--above-own-priority", "above_own", is_flag=True,
                 help="Allow a priority more important than the site's write priority "
                      "(operators' and safeties' slots): an explicit act, in the audit."),
    _client_port,
]


def _outcome_line(pid: str, r) -> str:
    """One line: what happened, at which priority (or written directly), what was read."""
    at = f"at priority {r.priority}" if r.priority is not None else \
        "written directly (no priority array)"
    value = f" {r.value:g}" if isinstance(r.value, float) else ""
    back = f", read back {r.readback!r}" if r.readback is not None else ""
    return f"{pid}: {r.outcome}{value} {at}{back} {r.error}".rstrip()


@main.command()
@click.argument("address")
@click.argument("obj", metavar="OBJECT")
@click.argument("value", type=Number())
@_apply(_write_opts)
@click.option("--below-policy-floor", "below_floor", is_flag=True,
              help="Allow a cooling setpoint below the site's policy floor (25 °C): an "
                   "explicit act, in the audit.")
def write(address: str, obj: str, value: float, priority: int, site_file: Path | None,
          db_path: Path, reason: str, above_own: bool, bacnet_port: int | None,
          below_floor: bool) -> None:
    """Write a present value at a priority, read it back, record it in the ledger.

    The point's limits from the site file apply (the value is clamped); a cooling setpoint
    below the policy floor is refused. An object without a priority array is written
    directly, and the value it replaced is restored by `bems release`.

    Example:

    \b
        bems write 127.0.0.1:47821 analog-value,1 26 --priority 12
    """
    from bems.control import WriteIntent

    with _gateway(bacnet_port, load_site(site_file)) as gw:
        writer, pid = _adhoc_writer(site_file, db_path, address, obj, gw)
        _audit_above_own(writer, above_own, "write", pid, priority, value, reason)
        if below_floor:
            writer.store.audit("cli", "write.below_policy_floor",
                               {"point": pid, "value": value, "reason": reason})
        r = writer.apply(WriteIntent(pid, value, reason, source="cli", priority=priority),
                         above_own=above_own, below_floor=below_floor)
        writer.store.close()
    click.echo(_outcome_line(pid, r))
    if not r.ok:
        sys.exit(1)


@main.command()
@click.argument("address")
@click.argument("obj", metavar="OBJECT")
@_apply(_write_opts)
def release(address: str, obj: str, priority: int, site_file: Path | None, db_path: Path,
            reason: str, above_own: bool, bacnet_port: int | None) -> None:
    """Relinquish a priority: write Null there, confirm, mark the ledger released.

    Example:

    \b
        bems release 127.0.0.1:47821 analog-value,1 --priority 12
    """
    with _gateway(bacnet_port, load_site(site_file)) as gw:
        writer, pid = _adhoc_writer(site_file, db_path, address, obj, gw)
        _audit_above_own(writer, above_own, "release", pid, priority, None, reason)
        r = writer.release(pid, "cli", reason, priority, above_own=above_own)
        writer.store.close()
    click.echo(_outcome_line(pid, r))
    if not r.ok:
        sys.exit(1)


@main.command()
@site_option
@db_option()
@click.option("--since", default=None, type=LocalTime(),
              help="Local time YYYY-MM-DD[THH:MM] (default: the newest stored reading).")
@_client_port
def backfill(site_file: Path | None, db_path: Path, since: dt.datetime | None, bacnet_port: int | None) -> None:
    """Read the devices' trend logs (ReadRange) into the store, to fill a polling gap.

    Example:

    \b
        bems backfill --db bems.sqlite --since 2026-11-20
    """
    from bems.plausible import Screen
    from connectors.bacnet.trends import backfill as run_backfill

    site = load_site(site_file)
    with Store(db_path, site.timezone) as store:
        if since is None:
            last = store.stats()["last reading"]
            start = (dt.datetime.fromisoformat(last) if last != "-" else
                     dt.datetime.now(site.tz) - dt.timedelta(days=7))
        else:
            start = _parse_start(since, site.tz).replace(tzinfo=site.tz)
        with _gateway(bacnet_port, site) as gw:
            screen = Screen(site)
            counts = run_backfill(site, gw, lambda rows: store.insert_screened(rows, screen),
                                  start)
        store.refresh_rollups()
    click.echo(f"{sum(counts.values())} readings from {len(counts)} trend logs since "
               f"{start.astimezone(site.tz):%Y-%m-%d %H:%M}")


@main.group("controller-schedule")
def controller_schedule() -> None:
    """Schedule and Calendar objects on controllers that schedule locally.

    Example:

    \b
        bems controller-schedule push
        bems controller-schedule show --device fc1
    """


def _local_devices(site, device: str | None):
    devs = [d for d in site.devices if d.schedule and (device is None or d.id == device)]
    if not devs:
        raise click.ClickException("no such device that schedules locally (site file: "
                                   "schedule and schedule_object on the device)")
    return devs


@controller_schedule.command("push")
@site_option
@click.option("--device", default=None, help="Only this device id.")
@db_option(help="SQLite file: schedule edits, and the ledger the pushes go to.")
@_client_port
def schedule_push(site_file: Path | None, device: str | None, db_path: Path,
                  bacnet_port: int | None) -> None:
    """Write the season's weekly schedule, holidays and make-up days into the controllers
    (through the one writer: read back and put in the ledger).

    Example:

    \b
        bems controller-schedule push --device fc2
    """
    from bems.control import Writer
    from bems.schedules import effective_site, for_controller
    from connectors.bacnet.fieldbus import BacnetFieldBus

    site = load_site(site_file)
    today = dt.datetime.now(site.tz).date()
    bus = BacnetFieldBus(site, port=bacnet_port, interface=_interface())
    bus.start()
    failed = []
    try:
        with Store(db_path, site.timezone) as store:
            eff = effective_site(site, store)
            writer = Writer(site, bus, store)
            for dev in _local_devices(site, device):
                p = for_controller(eff, dev, today)
                r = writer.push_schedule(dev, p, source="cli")
                click.echo(f"{dev.id}: weekly schedule, {len(p.off_days)} off days, "
                           f"{len(p.makeup_days)} make-up days: {r.outcome}"
                           + (f" ({r.error})" if r.error else ""))
                if not r.ok:
                    failed.append(dev.id)
    finally:
        bus.stop()
    if failed:
        raise click.ClickException(f"not written to: {', '.join(failed)}")


@controller_schedule.command("show")
@site_option
@click.option("--device", default=None, help="Only this device id.")
@_client_port
def schedule_show(site_file: Path | None, device: str | None, bacnet_port: int | None) -> None:
    """Read the Schedule and Calendar objects back from the controllers.

    Example:

    \b
        bems controller-schedule show --device fc1
    """
    from connectors.bacnet import schedules

    site = load_site(site_file)
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    with _gateway(bacnet_port, site) as gw:
        for dev in _local_devices(site, device):
            got = schedules.read(gw, dev)
            click.echo(f"{dev.id} ({dev.schedule_object}, {dev.calendar_object}):")
            for name, day in zip(days, got.weekly):
                click.echo(f"  {name}: " + (", ".join(f"{t} {'on' if v else 'off'}"
                                                      for t, v in day) or "-"))
            click.echo(f"  off days: {', '.join(d.isoformat() for d in got.off_days) or '-'}")
            click.echo(f"  make-up days: "
                       f"{', '.join(d.isoformat() for d in got.makeup_days) or '-'}")


@main.command()
@site_option
@click.option("--start", "start", required=True, help="First day, YYYY-MM-DD (local).")
@click.option("--days", type=Number(1, 366, integer=True), default=14, show_default=True, help="Days to simulate.")
@click.option("--strategy", type=click.Choice(["baseline", "rules", "predictive", "bems"]),
              default="rules", show_default=True,
              help="The building's time clock alone, the rule set, or the predictive "
                   "strategy in the loop (bems: the rule set, its older name).")
@click.option("--warmup-days", type=Number(0, 60, integer=True), default=14, show_default=True,
              help="Days run before --start and not scored: the predictive strategy learns "
                   "its zone models from them (under the rule set).")
@click.option("--comfort-weight", type=Number(0, 100), default=None,
              help="Predictive: the energy (0) to comfort (100) slider (default: the site "
                   "file's, else the strategy's default).")
@click.option("--seed", type=Number(0, 2**31, integer=True), default=1, show_default=True,
              help="Predictive: the seed of the forecast's error.")
@click.option("--exact-forecast", is_flag=True,
              help="Predictive: the weather file's future without a forecast's error (only to "
                   "measure what the error costs).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A strategy parameter for this run (repeatable), checked as the site file "
                   "checks it: --param occupied_setpoint=25.5")
@click.option("--commissioning-days", type=Number(7, 28, integer=True), default=None,
              help="Commissioning for this many days from the first day run (the warm-up's): "
                   "the strategy decides after it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def simulate(site_file: Path | None, start: str, days: int, strategy: str, warmup_days: int,
             comfort_weight: float | None, seed: int, exact_forecast: bool,
             params: tuple[str, ...], commissioning_days: int | None, as_json: bool) -> None:
    """Closed loop, fast: EnergyPlus unpaced with BEMS's runtime in the loop (the one
    decision path and the one Writer, over an in-process bus); BOPTEST KPIs.

    Discomfort counts occupied hours outside 23-27 °C, on air and on operative temperature.
    The predictive strategy gets the weather file's future with a forecast's error added.

    Example:

    \b
        bems simulate --start 2026-07-06 --days 14 --strategy baseline --json
        bems simulate --start 2026-11-09 --days 14 --strategy rules --param occupied_setpoint=25.5
        bems simulate --start 2026-07-06 --days 14 --strategy predictive --comfort-weight 60
        bems simulate --start 2026-07-06 --days 14 --strategy predictive --commissioning-days 14
    """
    import json as _json

    from connectors.simulator.closedloop import Stopped, simulate as run_sim

    site = load_site(site_file)
    first = _date(start, "--start")
    if days < 1 or days > 366:
        raise click.BadParameter(f"{days}: 1..366 days", param_hint="--days")
    overrides = _strategy_params(params, site)
    if commissioning_days and strategy == "baseline":
        raise click.BadParameter("the baseline has no BEMS in the loop to commission",
                                 param_hint="--commissioning-days")
    if comfort_weight is not None:
        overrides["comfort_weight"] = comfort_weight
    try:
        k = run_sim(site, first, days, strategy, warmup_days=warmup_days, forecast_seed=seed,
                    forecast_error=not exact_forecast, params=overrides,
                    commissioning_days=commissioning_days or 0).as_dict()
    except Stopped as exc:
        click.echo("stopped: nothing scored; the run's files are removed", err=True)
        raise SystemExit(128 + exc.signum) from None
    if as_json:
        click.echo(_json.dumps({key: v for key, v in k.items() if key != "peak_at"}))
        return
    for key, v in k.items():
        click.echo(f"{key:>28}: {v}")
