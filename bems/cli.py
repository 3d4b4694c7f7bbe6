"""The `bems` command: a thin skin over the library; errors become one clear line, exit 1."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import click

from bems import __version__
from bems.config import ConfigError, load_site
from bems.errors import BemsError
from bems.storage import Store

DEFAULT_DB = "bems.sqlite"


class Number(click.ParamType):
    """A finite number in [low, high] (the one numeric type of every option and argument):
    click's float and FloatRange take NaN (every comparison with it is false), inf, 1e308,
    Arabic-Indic or full-width digits and '2_5'; this takes ASCII digits with a decimal
    point or comma (bems.text.parse_number)."""

    name = "number"

    def __init__(self, low: float | None = None, high: float | None = None,
                 integer: bool = False):
        self.low, self.high, self.integer = low, high, integer

    def convert(self, value, param, ctx):
        from bems.text import InputError, parse_number

        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = repr(value)
        try:
            v = parse_number(value)
        except InputError as err:
            self.fail(str(err), param, ctx)
        if self.integer and v != int(v):
            self.fail(f"{v:g} is not a whole number", param, ctx)
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            self.fail(f"{v:g} is not in {self.low:g}..{self.high:g}", param, ctx)
        return int(v) if self.integer else v

    def __repr__(self) -> str:
        return f"Number({self.low}, {self.high})"


class LocalTime(click.ParamType):
    """A local date and time, YYYY-MM-DD[THH:MM] (an offset is honoured), years 2000-2100;
    converted to a naive local time in the site's zone by the command."""

    name = "time"

    def convert(self, value, param, ctx):
        from bems.text import InputError, parse_local_datetime

        if isinstance(value, dt.datetime):
            return value
        try:  # the offset is kept: the command converts to the site's zone
            return parse_local_datetime(value, dt.timezone.utc) if _has_offset(value) else \
                parse_local_datetime(value, None).replace(tzinfo=None)
        except InputError as err:
            self.fail(str(err), param, ctx)
        except (TypeError, ValueError) as err:
            self.fail(f"{value!r}: {err}", param, ctx)


def _has_offset(text: str) -> bool:
    try:
        return dt.datetime.fromisoformat(str(text).strip()).tzinfo is not None
    except ValueError:
        return False


def _local(when: dt.datetime, tz) -> dt.datetime:
    """A LocalTime's value as naive local time of the site."""
    return when.astimezone(tz).replace(tzinfo=None) if when.tzinfo is not None else when


class _Group(click.Group):
    """Turns our errors into a message and exit status instead of a traceback: a value the
    command cannot take is one line (`error: …`, exit 2), a refusal of BEMS's one line too
    (exit 1)."""

    def main(self, *args, **kwargs):
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            super().main(*args, **kwargs)
        except click.UsageError as err:
            hint = f" (see: {err.ctx.command_path} --help)" if err.ctx is not None else ""
            click.echo(f"error: {err.format_message()}{hint}"[:2000], err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        except click.exceptions.Exit as err:
            sys.exit(err.exit_code)
        sys.exit(0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigError as err:
            for issue in err.issues:
                click.echo(f"error: {issue}", err=True)
            click.echo(f"{len(err.issues)} error(s) in the site file", err=True)
            sys.exit(1)
        except BemsError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("stopped", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as err:  # a bug: still one line, the traceback on request
            if os.environ.get("BEMS_DEBUG"):
                raise
            click.echo(f"error: unexpected {type(err).__name__}: {err} "
                       "(set BEMS_DEBUG=1 for the traceback)", err=True)
            sys.exit(2)


def entry() -> None:
    """The `bems` program: what it creates (the store, reports, backups, secrets) is its
    user's alone (files 0600, folders 0700), whatever the shell's umask."""
    os.umask(0o077)
    main()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bems")
def main() -> None:
    """BEMS: building energy management for government administrative centres.

    Example:

    \b
        bems demo
        bems check-config my-site.toml
    """


@main.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check_config(file: Path) -> None:
    """Check a site file; report every error with file, line and field.

    Exits 1 when the file has errors, after listing all of them.

    Example:

    \b
        bems check-config site.toml
    """
    site = load_site(file)
    counts = site.summary()
    click.echo(f"{file}: OK - {site.name}")
    click.echo(", ".join(f"{v} {k}" for k, v in counts.items()))
    click.echo(f"floor area {site.floor_area_m2:,.0f} m2, time zone {site.timezone}, "
               f"write priority {site.control.write_priority}")


@main.command()
@click.option("--db", "db_path", default="bems-demo.sqlite", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="SQLite file to use.")
@click.option("--history-days", type=Number(0, 400, integer=True), default=35, show_default=True,
              help="Days of simulated past data to put in the store first.")
@click.option("--speed", type=Number(1, 3600), default=1.0, show_default=True,
              help="Simulated seconds per wall second (BEMS polls and decides once a "
                   "simulated minute, at most once a wall second).")
@click.option("--port", type=Number(1, 65535, integer=True), default=8080, show_default=True,
              help="Web UI port.")
@click.option("--start", "start", default=None, type=LocalTime(),
              help="Simulated start, local time YYYY-MM-DD[THH:MM] (default: now).")
def demo(db_path: Path, history_days: int, speed: float, port: int, start: dt.datetime | None) -> None:
    """Run BEMS on the embedded demo site (an administrative centre in Hai Phong).

    Fills the store with weeks of history from the simulated centre, serves the centre's BACnet
    devices on loopback, runs BEMS on them (polling, strategies, forecasts, reports) and the web
    UI on 127.0.0.1, until Ctrl-C; prints the URL and the admin's one-time password.

    Example:

    \b
        bems demo
        bems demo --db /tmp/demo.sqlite --speed 60 --start 2026-07-06T08:00
    """
    from bems.demo import run_demo

    site = load_site(None)
    run_demo(db_path, history_days, speed, port,
             start=_parse_start(start, site.tz) if start else None)


def _date(text: str, hint: str) -> dt.date:
    from bems.text import InputError, parse_date

    try:
        return parse_date(text)
    except InputError as err:
        raise click.BadParameter(str(err), param_hint=hint) from None


def _parse_start(value: dt.datetime | str | None, tz) -> dt.datetime:
    """A naive local time of the site: the value given (a LocalTime), else now."""
    if value is None:
        return dt.datetime.now(tz).replace(tzinfo=None, second=0, microsecond=0)
    if not isinstance(value, dt.datetime):
        value = LocalTime().convert(value, None, None)
    return _local(value, tz).replace(second=0, microsecond=0)


@main.command()
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Site file (default: the embedded demo centre).")
@click.option("--speed", type=Number(0, 3600), default=1.0, show_default=True,
              help="Simulated seconds per wall second (60: a minute per second; 0: unpaced).")
@click.option("--start", "start", default=None, type=LocalTime(),
              help="Simulated start, local time YYYY-MM-DD[THH:MM] (default: now).")
@click.option("--history-days", type=Number(0, 400, integer=True), default=0, show_default=True,
              help="First simulate this many days before the start into --db, unpaced.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite file for --history-days.")
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


def _interface() -> str | None:
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get("bacnet_interface") if ctx else None


def _gateway(port: int | None, site=None, bbmd: str | None = None):
    """BEMS's BACnet client as the site's [bacnet] table says (the embedded demo's: 127.0.0.1),
    with --interface, --bacnet-port (and a command's --bbmd) over it."""
    import dataclasses

    from bems.site import Bacnet
    from connectors.bacnet.gateway import gateway_for

    bacnet = site.bacnet if site is not None else Bacnet()
    if bbmd:
        bacnet = dataclasses.replace(bacnet, bbmd=bbmd)
    return gateway_for(bacnet, port, _interface())


def _client_port(f):
    f = click.option("--interface", default=None, expose_value=False,
                     callback=lambda ctx, _p, v: ctx.meta.__setitem__("bacnet_interface", v),
                     help="Network BEMS's BACnet client uses: ADDRESS/PREFIX "
                          "(192.168.10.5/24) or an interface name (default: the site file's "
                          "[bacnet] interface, 127.0.0.1/8).")(f)
    return click.option("--bacnet-port", type=Number(0, 65535, integer=True), default=None,
                        help="UDP port of BEMS's BACnet client (default: the site file's "
                             "[bacnet] port, 47808).")(f)


@main.command()
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Site file (default: the embedded demo centre).")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="SQLite file.")
@_client_port
@click.option("--poll-interval", type=Number(1, 86400), default=60.0,
              show_default=True, help="Seconds between poll cycles.")
@click.option("--strategy-interval", type=Number(1, 86400), default=60.0,
              show_default=True, help="Seconds between strategy runs.")
@click.option("--dry-run", is_flag=True, help="Decide but write nothing (see the log).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, help="What the log (stderr) shows.")
def run(site_file: Path | None, db_path: Path, bacnet_port: int | None, poll_interval: float,
        strategy_interval: float, dry_run: bool, log_level: str) -> None:
    """Run BEMS for a site: poll, store, heartbeat, and release every write at shutdown.

    At start, writes a previous run left held (a crash) are released.

    Example:

    \b
        bems run --site site.toml --db site.sqlite
    """
    import signal
    import threading

    import logging

    from bems.runtime import Runtime

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    site = load_site(site_file)
    rt = Runtime(site, db_path, bacnet_port=bacnet_port, poll_interval_s=poll_interval,
                 strategy_interval_s=strategy_interval, dry_run=dry_run,
                 interface=_interface())
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    rt.start()
    poll = rt.last_poll
    ok = sum(1 for h in poll.devices.values() if h.state == "ok") if poll else 0
    click.echo(f"running {site.name}: {ok}/{len(site.devices)} devices answer, polling every "
               f"{poll_interval:g} s into {db_path}", err=False)
    try:
        # wake every second: a signal delivered to another thread (the BACnet loop, a job)
        # only runs its Python handler when the main thread next runs, and a bare wait()
        # would sleep through SIGTERM forever
        while not done.wait(1.0):
            pass
    finally:
        rt.stop()
        click.echo("stopped; every write released")


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
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Take the client's network from this site file's [bacnet] table.")
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
    click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
                 help="Site file whose point limits apply (default: the demo site)."),
    click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
                 type=click.Path(dir_okay=False, path_type=Path), help="Ledger (SQLite)."),
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


def _apply(opts):
    def deco(f):
        for o in reversed(opts):
            f = o(f)
        return f
    return deco


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
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Site file (default: the embedded demo centre).")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="SQLite file.")
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
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Site file (default: the embedded demo centre).")
@click.option("--device", default=None, help="Only this device id.")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite file: schedule edits, and the ledger the pushes go to.")
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
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Site file (default: the embedded demo centre).")
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


@main.group(invoke_without_command=True)
@click.option("--meter", default=None, help="Meter id (default: every meter with forecasts).")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="SQLite file.")
@click.pass_context
def forecast(ctx: click.Context, meter: str | None, db_path: Path) -> None:
    """Load forecasts: show the latest stored ones, or backtest models on a CSV.

    Example:

    \b
        bems forecast --meter main --db bems.sqlite
        bems forecast backtest --csv loads.csv --country VN --days 42
    """
    if ctx.invoked_subcommand is not None:
        return
    with Store(db_path) as store:
        rows = store.latest_forecasts(meter)
    if not rows:
        raise click.ClickException("no forecasts stored yet (the runtime writes them nightly)")
    for m, items in rows.items():
        click.echo(f"{m}: model {items[0]['model']}, issued {items[0]['issued_at']:%Y-%m-%d %H:%M} UTC")
        for it in items:
            click.echo(f"  {it['ts']:%Y-%m-%d %H:%M} UTC  {it['yhat']:10.1f} kWh")


@forecast.command("refit")
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Site file (default: the embedded demo centre).")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="SQLite file.")
@click.option("--no-prophet", is_flag=True, help="Leave Prophet out (faster).")
def forecast_refit(site_file: Path | None, db_path: Path, no_prophet: bool) -> None:
    """Choose each meter's model by backtest, refit it and store 48 h of forecasts.

    The runtime does this every night; meters run in parallel, one process per core.

    Example:

    \b
        bems forecast refit --db bems-demo.sqlite
    """
    from models.service import CANDIDATES, describe, refit_all

    site = load_site(site_file)
    cands = tuple(c for c in CANDIDATES if not (no_prophet and c == "prophet"))
    for r in refit_all(site, db_path, dt.datetime.now(dt.timezone.utc), candidates=cands):
        click.echo(describe(r))


@forecast.command("backtest")
@click.option("--csv", "csv_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Hourly (or finer) meter data: ds,y,temp_c with ds in local time.")
@click.option("--country", default="VN", show_default=True, help="Public holidays of.")
@click.option("--days", type=Number(1, 3660, integer=True), default=42, show_default=True, help="Test days.")
@click.option("--end", default=None, help="YYYY-MM-DD: test days end the day before "
              "(default: the end of the data).")
@click.option("--refit", type=Number(1, 366, integer=True), default=7, show_default=True, help="Refit every N days.")
@click.option("--no-prophet", is_flag=True, help="Leave Prophet out (faster).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def forecast_backtest(csv_file: Path, country: str, days: int, end: str | None, refit: int,
                      no_prophet: bool, as_json: bool) -> None:
    """Rolling-origin day-ahead backtest of every model, with ASHRAE G14 metrics.

    Each test day is forecast as at 00:00 local (24 hourly values) from models fitted on
    the days before it; the model with the lowest hourly CV(RMSE) is selected.

    Example:

    \b
        bems forecast backtest --csv ../shared/data/loads/cambridge-b0.csv --country GB
        bems forecast backtest --csv meter.csv --days 14 --end 2026-11-01 --json
    """
    import json as _json

    from models.backtest import run_backtest
    from models.data import DayTypes, load_csv
    from models.forecasters import catalogue

    df, rep = load_csv(csv_file)
    end_day = _date(end, "--end") if end else None
    result = run_backtest(df, DayTypes(country), days, end_day, refit_every=refit,
                          models=catalogue(prophet=not no_prophet), meter=csv_file.stem)
    if as_json:
        click.echo(_json.dumps(result.as_dict()))
        return
    click.echo(f"{result.meter}: {days} days {result.first_day} .. {result.last_day}, "
               f"refit every {refit} days; repairs: {rep.summary()}")
    click.echo(f"{'model':<14}{'CV(RMSE) %':>12}{'NMBE %':>10}{'daily CV %':>12}{'fit s':>8}")
    for name, sc in result.scores.items():
        mark = "  <- selected" if name == result.selected else ""
        g14 = "" if sc.meets_g14_hourly else "  (misses G14 hourly)"
        click.echo(f"{name:<14}{sc.cv_rmse:>12.1f}{sc.nmbe:>10.1f}{sc.daily_cv_rmse:>12.1f}"
                   f"{sc.fit_seconds:>8.2f}{mark}{g14}")


@main.command()
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Site file (default: the embedded demo centre).")
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
                   "file's, else 50).")
@click.option("--seed", type=Number(0, 2**31, integer=True), default=1, show_default=True,
              help="Predictive: the seed of the forecast's error.")
@click.option("--exact-forecast", is_flag=True,
              help="Predictive: the weather file's future without a forecast's error (only to "
                   "measure what the error costs).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A strategy parameter for this run (repeatable), checked as the site file "
                   "checks it: --param occupied_setpoint=25.5")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def simulate(site_file: Path | None, start: str, days: int, strategy: str, warmup_days: int,
             comfort_weight: float | None, seed: int, exact_forecast: bool,
             params: tuple[str, ...], as_json: bool) -> None:
    """Closed loop, fast: EnergyPlus unpaced with BEMS's runtime in the loop (the one
    decision path and the one Writer, over an in-process bus); BOPTEST KPIs.

    Discomfort counts occupied hours outside 23-27 °C, on air and on operative temperature.
    The predictive strategy gets the weather file's future with a forecast's error added.

    Example:

    \b
        bems simulate --start 2026-07-06 --days 14 --strategy baseline --json
        bems simulate --start 2026-11-09 --days 14 --strategy rules --param occupied_setpoint=25.5
        bems simulate --start 2026-07-06 --days 14 --strategy predictive --comfort-weight 60
    """
    import json as _json

    from connectors.simulator.closedloop import simulate as run_sim

    site = load_site(site_file)
    first = _date(start, "--start")
    if days < 1 or days > 366:
        raise click.BadParameter(f"{days}: 1..366 days", param_hint="--days")
    overrides = _strategy_params(params, site)
    if comfort_weight is not None:
        overrides["comfort_weight"] = comfort_weight
    k = run_sim(site, first, days, strategy, warmup_days=warmup_days, forecast_seed=seed,
                forecast_error=not exact_forecast, params=overrides).as_dict()
    if as_json:
        click.echo(_json.dumps({key: v for key, v in k.items() if key != "peak_at"}))
        return
    for key, v in k.items():
        click.echo(f"{key:>28}: {v}")


@main.group()
def strategies() -> None:
    """What the strategies would write now, without writing (dry run).

    Example:

    \b
        bems strategies dry-run --db bems.sqlite
    """


@strategies.command("dry-run")
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Site file (default: the embedded demo centre).")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="SQLite file.")
@click.option("--at", "at", default=None, type=LocalTime(), help="Local time YYYY-MM-DDTHH:MM (default: now).")
def strategies_dry_run(site_file: Path | None, db_path: Path, at: dt.datetime | None) -> None:
    """Show every write the strategies would make, with its reason, from the latest readings.

    Example:

    \b
        bems strategies dry-run --db bems-demo.sqlite --at 2026-11-26T06:45
    """
    from bems.decision import decide

    site = load_site(site_file)
    if at is None:
        now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    else:
        now = _parse_start(at, site.tz).replace(tzinfo=site.tz)
    with Store(db_path, site.timezone) as store:
        decision = decide(site, store, now)
    click.echo(f"at {now.astimezone(site.tz):%Y-%m-%d %H:%M} (demand level {decision.level})")
    for d in decision.zones:
        for it in d.intents:
            click.echo(f"{d.zone:<10} {d.mode:<12} {it.point:<16} {it.value!s:>6}  {it.reason}")


def _strategy_params(pairs: tuple[str, ...], site) -> dict:
    """NAME=VALUE pairs checked by the one validator of strategy parameters (the site file's
    and the UI's); any problem is one line, exit 1."""
    from bems.strategies.params import StrategyParams, validate

    types = StrategyParams.field_types()
    raw: dict = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise BemsError(f"--param {pair[:60]!r}: use NAME=VALUE")
        if name in raw:
            raise BemsError(f"--param {name[:60]}: given twice")
        if types.get(name) is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise BemsError(f"--param {name}: must be true or false, got {value[:40]!r}")
            raw[name] = value.lower() in ("true", "1", "yes", "on")
            continue
        if types.get(name) is tuple:
            raise BemsError(f"--param {name}: a list; set it in the site file's [strategies]")
        raw[name] = value
    bools = {k: v for k, v in raw.items() if isinstance(v, bool)}
    clean, problems = validate({k: v for k, v in raw.items() if k not in bools},
                               site.control.policy_min_cooling_setpoint, from_form=True,
                               base=site.strategies)
    if problems:
        key, _code, message = problems[0]
        raise BemsError(f"--param {str(key)[:60]}: {message}"[:300])
    return {**clean, **bools}


def _cli_user() -> str:
    """Who acts from the command line, for the audit: the operating-system account (a CLI
    option would let anyone write any name)."""
    import getpass

    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


@main.group()
def override() -> None:
    """Operator overrides: a value for a point until it expires; strategies yield to it.

    Example:

    \b
        bems override set f1.p1.sp 25.5 --minutes 120 --reason "meeting"
        bems override list
    """


@override.command("set")
@click.argument("point")
@click.argument("value", type=Number())
@click.option("--minutes", type=Number(1, 7 * 24 * 60), required=True,
              help="How long it holds (1 minute to 7 days).")
@click.option("--reason", default="", help="Why, for the ledger.")
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
def override_set(point: str, value: float, minutes: float, reason: str,
                 site_file: Path | None, db_path: Path) -> None:
    """Set an override; it is applied at the next strategy run and released when it expires.

    Example:

    \b
        bems override set f2.core.ac 0 --minutes 60 --reason "maintenance"
    """
    from bems.overrides import add_override

    site = load_site(site_file)
    now = dt.datetime.now(dt.timezone.utc)
    until = now + dt.timedelta(minutes=minutes)
    with Store(db_path, site.timezone) as store:
        oid = add_override(site, store, point, value, until, _cli_user(), reason, now)
    click.echo(f"override {oid}: {point} = {value:g} until "
               f"{until.astimezone(site.tz):%Y-%m-%d %H:%M} ({site.timezone})")


@override.command("list")
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
def override_list(site_file: Path | None, db_path: Path) -> None:
    """List the overrides in force.

    Example:

    \b
        bems override list --db bems.sqlite
    """
    site = load_site(site_file)
    with Store(db_path) as store:
        rows = store.overrides(active_at=dt.datetime.now(dt.timezone.utc))
    for o in rows:
        click.echo(f"{o['id']:>4} {o['point']:<16} {o['value']:>6g} until "
                   f"{o['expires_at'].astimezone(site.tz):%Y-%m-%d %H:%M} ({site.timezone}) "
                   f"by {o['created_by']}: {o['reason']}")
    if not rows:
        click.echo("no override in force")


@override.command("release")
@click.argument("override_id", type=Number(1, 2**62, integer=True))
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
def override_release(override_id: int, db_path: Path) -> None:
    """End an override before it expires.

    Example:

    \b
        bems override release 3
    """
    from bems.overrides import release_override

    with Store(db_path) as store:
        n = release_override(store, override_id, _cli_user(), dt.datetime.now(dt.timezone.utc))
    if not n:
        raise click.ClickException(f"no override {override_id} in force")
    click.echo(f"override {override_id} released")


@main.command()
@click.option("--month", default=None, help="YYYY-MM: the monthly report.")
@click.option("--year", type=Number(2000, 2100, integer=True), default=None, help="YYYY: the yearly report (Circular 25).")
@click.option("--format", "fmt_name", type=click.Choice(["pdf", "xlsx", "csv"]), default="pdf",
              show_default=True)
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True)
@click.option("--out", "out_dir", default="reports", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path))
def report(month: str | None, year: int | None, fmt_name: str, lang: str, out_dir: Path,
           db_path: Path, site_file: Path | None) -> None:
    """The monthly energy report, or the yearly report to the Ministry.

    Example:

    \b
        bems report --month 2026-10 --format pdf --lang vi --out reports --db bems.sqlite
        bems report --year 2026 --format xlsx --db bems.sqlite
    """
    from bems.reports import monthly, render, yearly
    from models.savings import option_c

    if (month is None) == (year is None):
        raise click.UsageError("give --month YYYY-MM or --year YYYY")
    site = load_site(site_file)
    with Store(db_path, site.timezone) as store:
        if month:
            path = render.render(monthly.build_monthly(site, store, month, option_c), fmt_name,
                                 out_dir, lang)
        else:
            if fmt_name == "csv":
                raise click.UsageError("the yearly report is made as pdf or xlsx")
            path = yearly.render(yearly.build_yearly(site, store, year), fmt_name, out_dir)
        store.audit("cli", "report.make", {"month": month, "year": year, "file": path.name})
    click.echo(str(path))


@main.command()
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--days", type=Number(1, 400, integer=True), default=7, show_default=True,
              help="Faults seen in the last DAYS days.")
@click.option("--detect", is_flag=True,
              help="Run the rules over the last DAYS days first and record what they find.")
@click.option("--all", "show_all", is_flag=True, help="Closed faults too.")
@click.option("--lang", type=click.Choice(["vi", "en"]), default="en", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def faults(db_path: Path, site_file: Path | None, days: int, detect: bool, show_all: bool,
           lang: str, as_json: bool) -> None:
    """Faults found by the rules, most costly first: what, where, since when, what it costs
    a day, the likely cause and what to check.

    Example:

    \b
        bems faults --db bems.sqlite --lang vi
        bems faults --detect --days 28 --db bems.sqlite --json
    """
    import json as _json

    from bems.faults import target_name
    from bems.faults.engine import run as detect_faults
    from bems.faults.texts import fault_text

    site = load_site(site_file)
    with Store(db_path, site.timezone) as store:
        now = store.time_span()[1] or dt.datetime.now(dt.timezone.utc)
        if detect:
            detect_faults(site, store, now, hours=24 * days)
        rows = store.faults(since=now - dt.timedelta(days=days),
                            status=None if show_all else "active")
    out = []
    for f in rows:
        name = target_name(site, f["target_kind"], f["target"])
        text = fault_text(f["rule"], f["evidence"], name, lang)
        out.append({"id": f["id"], "rule": f["rule"], "target": f["target"], "name": name,
                    "first": f["first"].isoformat(), "last": f["last"].isoformat(),
                    "status": f["status"], "kwh_per_day": f["kwh_per_day"],
                    "vnd_per_day": f["vnd_per_day"], "discomfort_kh": f["discomfort_kh"], **text})
    if as_json:
        click.echo(_json.dumps(out, ensure_ascii=False, indent=1))
        return
    if not out:
        click.echo("no faults" if lang == "en" else "không có lỗi")
        return
    tz = site.tz
    for f in out:
        first = dt.datetime.fromisoformat(f["first"]).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        click.echo(f"#{f['id']} {f['title']} — {f['name']} ({f['status']})")
        click.echo(f"    {first}; {f['kwh_per_day']:.1f} kWh/day, {f['vnd_per_day']:,.0f} VND/day"
                   + (f", {f['discomfort_kh']:.1f} K·h" if f["discomfort_kh"] else ""))
        click.echo(f"    {f['cause']}")
        click.echo(f"    → {f['check']}")


@main.group()
def user() -> None:
    """Users of the web UI: viewer, operator (overrides, schedules), admin.

    Example:

    \b
        bems user add lan --role operator --db bems.sqlite
    """


_db_option = click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
                          type=click.Path(dir_okay=False, path_type=Path))
_password_stdin = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from standard input (for scripts); else it is asked at a prompt. "
         "It is never taken on the command line, where other users of the machine can see it.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


def _user_change(action, *args) -> None:
    from bems.users import UserError

    with Store(args[0]) as store:
        try:
            action(store, *args[1:], _cli_user(), dt.datetime.now(dt.timezone.utc))
        except UserError as err:
            raise click.ClickException(str(err)) from None


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator", "admin"]), required=True)
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True)
@_db_option
@_password_stdin
def user_add(name: str, role: str, lang: str, db_path: Path, password_stdin: bool) -> None:
    """Add a user; the password is stored hashed. A name already taken is refused.

    Example:

    \b
        bems user add lan --role operator
        printf '%s\\n' "$PASSWORD" | bems user add minh --role viewer --password-stdin
    """
    from bems.users import add_user

    _user_change(add_user, db_path, name, role, _read_password(password_stdin), lang)
    click.echo(f"user {name} ({role}) added")


@user.command("passwd")
@click.argument("name")
@_db_option
@_password_stdin
def user_passwd(name: str, db_path: Path, password_stdin: bool) -> None:
    """Set a user's password; that user's sessions end.

    Example:

    \b
        bems user passwd admin --db bems-demo.sqlite
    """
    from bems.users import set_password

    _user_change(set_password, db_path, name, _read_password(password_stdin))
    click.echo(f"password of {name} changed; their sessions have ended")


@user.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(["viewer", "operator", "admin"]))
@_db_option
def user_role(name: str, role: str, db_path: Path) -> None:
    """Change a user's role (the last active admin stays admin).

    Example:

    \b
        bems user role lan operator
    """
    from bems.users import set_role

    _user_change(set_role, db_path, name, role)
    click.echo(f"{name} is now {role}")


def _user_switch(verb: str, disabled: bool, summary: str) -> None:
    """`bems user disable` and `bems user enable`: one command each, one body."""
    def command(name: str, db_path: Path) -> None:
        from bems.users import set_disabled

        _user_change(set_disabled, db_path, name, disabled)
        click.echo(f"{name} {verb}d")

    command.__doc__ = f"{summary}\n\n    Example:\n\n    \b\n        bems user {verb} minh\n    "
    user.command(verb)(_db_option(click.argument("name")(command)))


_user_switch("disable", True, "Disable a user: no login, their sessions end (the last active "
                              "admin cannot be).")
_user_switch("enable", False, "Enable a disabled user again.")


@user.command("delete")
@click.argument("name")
@_db_option
def user_delete(name: str, db_path: Path) -> None:
    """Delete a user (the audit keeps what they did; the last active admin cannot be).

    Example:

    \b
        bems user delete minh
    """
    from bems.users import delete_user

    _user_change(delete_user, db_path, name)
    click.echo(f"{name} deleted")


@main.command()
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", default=None,
              help="Address to listen on (default: the site file's [web] host, 127.0.0.1).")
@click.option("--port", type=Number(1, 65535, integer=True), default=None,
              help="Port (default: the site file's [web] port, 8080).")
def web(site_file: Path | None, db_path: Path, host: str | None, port: int | None) -> None:
    """Serve the web UI alone, over a store another process fills (`bems run`).

    Example:

    \b
        bems web --db bems.sqlite --port 8080
    """
    from webui import create_app
    from webui.server import WebServer

    site = load_site(site_file)
    app = create_app(site, db_path)
    w = site.web
    server = WebServer(app, host or w.host, port or w.port, w.certificate, w.private_key)
    click.echo(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


@main.group()
def db() -> None:
    """Manage the SQLite store.

    Example:

    \b
        bems db upgrade --db bems.sqlite
        bems db stats --db bems.sqlite
    """


@db.command("upgrade")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="SQLite file.")
def db_upgrade(db_path: Path) -> None:
    """Create the database or bring its schema up to date.

    Example:

    \b
        bems db upgrade --db bems.sqlite
    """
    with Store(db_path) as store:
        click.echo(f"{db_path}: schema up to date ({store.integrity_check()})")


@db.command("stats")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="SQLite file.")
def db_stats(db_path: Path) -> None:
    """Show what the store holds: readings, points, time span, ledger entries.

    Example:

    \b
        bems db stats --db bems.sqlite
    """
    with Store(db_path) as store:
        for key, value in store.stats().items():
            click.echo(f"{key:>16}: {value}")


@db.command("purge")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="SQLite file.")
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Site file whose retention setting applies (default: the demo site).")
def db_purge(db_path: Path, site_file: Path | None) -> None:
    """Delete raw readings older than the site's retention; rollups are kept.

    Example:

    \b
        bems db purge --db bems.sqlite --site site.toml
    """
    site = load_site(site_file)
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=site.storage.retention_days)
    with Store(db_path, site.timezone) as store:
        n = store.purge_readings(cutoff)
        store.audit("cli", "db.purge", {"before": cutoff.isoformat(), "deleted": n})
    click.echo(f"deleted {n} readings older than {cutoff:%Y-%m-%d} "
               f"({site.storage.retention_days} days)")


# --- the city portfolio -------------------------------------------------------------------

@main.group()
def portfolio() -> None:
    """The city portfolio: every centre's BEMS reports to the city energy office.

    A centre reports when its site file has a [portfolio] table (`bems run` then publishes).
    The city runs the broker (Mosquitto), `bems portfolio ingest` (into PostgreSQL) and
    `bems portfolio web`.

    Example:

    \b
        bems portfolio broker-config --out /etc/mosquitto/bems --port 8883 \\
            --ca ca.pem --cert server.pem --key server.key
        bems portfolio add-site hp-phuong-1 --broker-dir /etc/mosquitto/bems --password-stdin
        bems portfolio ingest --dsn "host=127.0.0.1 dbname=city" --broker mqtts://127.0.0.1:8883 \\
            --ca-file ca.pem --username ingest --password-file ingest.pw
        bems portfolio web --dsn "host=127.0.0.1 dbname=city" --db city-users.sqlite
    """


def _dsn_option(f):
    return click.option("--dsn", required=True, envvar="BEMS_CITY_DSN",
                        help="PostgreSQL connection string (or BEMS_CITY_DSN).")(f)


def _secret(path: Path | None, from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return None


@portfolio.command("broker-config")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for mosquitto.conf, the ACL, the password file and persistence.")
@click.option("--port", type=Number(1, 65535, integer=True), default=8883, show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--ca", "ca", required=True, type=click.Path(dir_okay=False, exists=True,
                                                            path_type=Path))
@click.option("--cert", required=True, type=click.Path(dir_okay=False, exists=True,
                                                        path_type=Path))
@click.option("--key", required=True, type=click.Path(dir_okay=False, exists=True,
                                                       path_type=Path))
@click.option("--ingest-user", "ingest_users", multiple=True, default=("ingest",),
              show_default=True, help="Users that read every centre (the ingest).")
def portfolio_broker_config(out_dir: Path, port: int, host: str, ca: Path, cert: Path,
                            key: Path, ingest_users: tuple[str, ...]) -> None:
    """Write Mosquitto's configuration: TLS only, a credential per centre, and the ACL under
    which a centre publishes only below bems/v1/<its id>/ and reads nothing.

    Example:

    \b
        bems portfolio broker-config --out /etc/mosquitto/bems --ca ca.pem \\
            --cert server.pem --key server.key
    """
    from city.broker import write_config

    conf = write_config(out_dir, port=port, cafile=ca.resolve(), certfile=cert.resolve(),
                        keyfile=key.resolve(), ingest_users=list(ingest_users), host=host)
    click.echo(f"wrote {conf}; run: mosquitto -c {conf}")


@portfolio.command("add-site")
@click.argument("site_id")
@click.option("--broker-dir", required=True, type=click.Path(file_okay=False, exists=True,
                                                              path_type=Path))
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--ingest", "for_ingest", is_flag=True,
              help="The credential of one of the city's ingests (ingest, ingest-2, ...), not a "
                   "centre's.")
@click.option("--replace", is_flag=True, help="Change a credential that exists already.")
def portfolio_add_site(site_id: str, broker_dir: Path, password_stdin: bool, for_ingest: bool,
                       replace: bool) -> None:
    """Make a centre's credential on the city's broker (the user name is its site id); a
    new password is printed once, or read from stdin. An existing credential is changed only
    with --replace; the ingest's only with --ingest.

    Example:

    \b
        bems portfolio add-site hp-le-chan --broker-dir /etc/mosquitto/bems
        bems portfolio add-site ingest --ingest --broker-dir /etc/mosquitto/bems
    """
    import re
    import secrets

    from bems.portfolio.schema import site_ok
    from city.broker import set_password, users

    if for_ingest and not re.fullmatch(r"ingest(-[a-z0-9]{1,20})?", site_id):
        raise click.BadParameter("an ingest is ingest or ingest-NAME (a-z, 0-9)",
                                 param_hint="SITE_ID")
    if not for_ingest and not site_ok(site_id):
        raise click.BadParameter("a centre's id: 1..40 lower-case letters, digits or '-', not "
                                 "starting 'ingest' (the city's own clients: --ingest)",
                                 param_hint="SITE_ID")
    if site_id in users(broker_dir) and not replace:
        raise BemsError(f"{site_id} has a credential already: --replace to change it")
    password = _secret(None, True) if password_stdin else secrets.token_urlsafe(18)
    if not password or len(password) > 200 or any(c in password for c in "\r\n\x00"):
        raise click.BadParameter("empty, longer than 200 characters, or with a line break",
                                 param_hint="password")
    try:
        set_password(broker_dir, site_id, password)
    except (OSError, RuntimeError, ValueError) as err:  # never the password in the message
        raise BemsError(f"{site_id}: credential not set: {err}") from None
    click.echo(f"{site_id}: credential set" + ("" if password_stdin else
                                                f"; password: {password}"))


@portfolio.command("register")
@_dsn_option
@click.argument("site_files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, exists=True, path_type=Path))
def portfolio_register(dsn: str, site_files: tuple[Path, ...]) -> None:
    """Register centres from their site files (each needs [portfolio] site_id): name, floor
    area, staff and meter tree. A centre also registers itself when it first reports.

    Example:

    \b
        bems portfolio register --dsn "dbname=city" le-chan.toml hong-bang.toml
    """
    from bems.portfolio.registry import registry
    from city.store import CityStore

    with CityStore(dsn) as cs:
        cs.migrate()
        for f in site_files:
            site = load_site(f)
            if site.portfolio is None:
                raise BemsError(f"{f}: no [portfolio] table (its site_id names the centre)")
            with cs.conn.transaction():
                cs.upsert_site(site.portfolio.site_id, registry(site))
            click.echo(f"{site.portfolio.site_id}: {site.name}")


@portfolio.command("ingest")
@_dsn_option
@click.option("--broker", required=True, help="mqtts://HOST:PORT")
@click.option("--username", default="ingest", show_default=True,
              help="The ingest's own credential on the broker (ingest, ingest-2, ...): the "
                   "broker takes it as the client id.")
@click.option("--password-file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--partition", default="1/1", show_default=True, metavar="K/N",
              help="Run N ingests (each its own --username): this one takes the centres "
                   "whose id hashes to K of N.")
def portfolio_ingest(dsn: str, broker: str, username: str, password_file: Path | None,
                     ca_file: Path | None, partition: str) -> None:
    """Take every centre's messages from the broker into PostgreSQL until Ctrl-C. Several
    processes split the centres (--partition 1/2 and 2/2, each its own --username).

    Example:

    \b
        bems portfolio ingest --dsn "dbname=city" --broker mqtts://127.0.0.1:8883 \\
            --ca-file ca.pem --password-file ingest.pw
    """
    import logging
    import re
    import time

    from city.broker import user_ok
    from city.ingest import Ingest

    if not (user_ok(username) and username.startswith("ingest")):
        raise click.BadParameter("ingest, or ingest-NAME", param_hint="--username")
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})", partition)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)) <= 64:
        raise click.BadParameter("K/N with 1 <= K <= N <= 64", param_hint="--partition")
    client_id = username
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    ing = Ingest(dsn, broker, username=username, password=_secret(password_file, False),
                 ca_file=ca_file, partition=(int(m.group(1)) - 1, int(m.group(2))))
    ing.start()
    click.echo(f"ingest {client_id}: {broker} → PostgreSQL")
    try:
        while True:
            time.sleep(60)
            click.echo(f"ingest: {ing.stats()}")
    except KeyboardInterrupt:
        pass
    finally:
        ing.stop()


@portfolio.command("web")
@_dsn_option
@click.option("--db", "db_path", default="city-users.sqlite", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite file of the portfolio UI's users, sessions and audit.")
@click.option("--name", default="Sở Xây dựng Hải Phòng", show_default=True,
              help="The city office's name, shown in the UI and reports.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=Number(1, 65535, integer=True), default=8090, show_default=True)
def portfolio_web(dsn: str, db_path: Path, name: str, host: str, port: int) -> None:
    """Serve the city's UI: centres ranked, a centre's load and forecast, the city's month,
    the consolidated yearly report. The first start makes user admin and prints its password.

    Example:

    \b
        bems portfolio web --dsn "dbname=city" --db city-users.sqlite --port 8090
    """
    from bems.demo import demo_admin
    from city.queries import CityQueries
    from city.store import CityStore
    from webui import create_app, portfolio_site
    from webui.server import WebServer

    name = name.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise click.BadParameter("1..200 printable characters", param_hint="--name")
    with CityStore(dsn) as cs:
        cs.migrate()
    with Store(db_path) as store:
        password = demo_admin(store)
    app = create_app(portfolio_site(name), db_path, portfolio=CityQueries(dsn))
    server = WebServer(app, host, port)
    click.echo(server.url)
    if password:
        click.echo(f"user: admin\npassword: {password}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


@portfolio.command("report")
@_dsn_option
@click.option("--year", type=Number(2000, 2100, integer=True), required=True)
@click.option("--name", default="Sở Xây dựng Hải Phòng", show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Default: tt25-YEAR.xlsx")
def portfolio_report(dsn: str, year: int, name: str, out_file: Path | None) -> None:
    """The consolidated yearly report (Circular 25 figures per centre, XLSX).

    Example:

    \b
        bems portfolio report --dsn "dbname=city" --year 2026
    """
    from city.queries import CityQueries
    from city.report import consolidated_xlsx

    queries = CityQueries(dsn)
    try:
        out = consolidated_xlsx(queries.year(year), year, name,
                                out_file or Path(f"tt25-{year}.xlsx"))
    finally:
        queries.close()
    click.echo(str(out))


@portfolio.command("forecast")
@_dsn_option
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="A Dask scheduler (tcp://HOST:8786); default: a local cluster.")
@click.option("--workers", type=Number(1, 256, integer=True), default=2, show_default=True,
              help="Workers of the local cluster.")
@click.option("--model", type=click.Choice(["stack", "global", "per_meter"]), default="stack",
              show_default=True,
              help="stack: the global model averaged with each meter's own two (the best on "
                   "held-out meters, bench/fleet.py); global: one model across meters (the "
                   "fastest); per_meter: each meter's day-type model.")
@click.option("--day", default=None, help="The day to forecast, YYYY-MM-DD (default: tomorrow).")
def portfolio_forecast(dsn: str, scheduler: str | None, workers: int, model: str,
                       day: str | None) -> None:
    """Refit the day-ahead model of every meter in the portfolio on Dask and store tomorrow's
    forecasts (the centre pages show them).

    Example:

    \b
        bems portfolio forecast --dsn "dbname=city" --scheduler tcp://10.0.0.5:8786
    """
    from dask.distributed import Client, LocalCluster

    from city.fleet import refit_city

    when = _date(day, "--day") if day else None
    if scheduler:
        with Client(scheduler) as client:
            info = refit_city(dsn, client, when, model)
    else:
        with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as lc, \
                Client(lc) as client:
            info = refit_city(dsn, client, when, model)
    click.echo(f"{info['meters']} meters forecast ({info['model']}) in {info['seconds']:.1f} s")
