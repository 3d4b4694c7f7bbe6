"""What every command of the `bems` programs shares: the error-to-one-line group, the one
`--site` and the one `--db` option, the numeric and time types, and small helpers."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import click

from bems.config import ConfigError
from bems.errors import BemsError

DEFAULT_DB = "bems.sqlite"


class ErrorGroup(click.Group):
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
        except BrokenPipeError:  # `bems … | head`: the reader has all it wanted
            _quiet_stdout()
            sys.exit(141)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as err:  # a bug: still one line, the traceback on request
            if os.environ.get("BEMS_DEBUG"):
                raise
            click.echo(f"error: unexpected {type(err).__name__}: {err} "
                       "(set BEMS_DEBUG=1 for the traceback)", err=True)
            sys.exit(2)




def _quiet_stdout() -> None:
    """What is left in stdout's buffer goes nowhere (else Python reports the broken pipe
    again at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def site_option(f=None, *, help: str = "Site file (default: the embedded demo centre)."):
    """The one --site: `@site_option` or `@site_option(help=...)`."""
    opt = click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
                       help=help)
    return opt(f) if f is not None else opt


def db_option(default: str | None = DEFAULT_DB, exists: bool = False,
              help: str = "SQLite file."):
    """The one --db (default: bems.sqlite; None: no default; `exists`: it must be there)."""
    return click.option("--db", "db_path", default=default, show_default=default is not None,
                        type=click.Path(dir_okay=False, exists=exists, path_type=Path),
                        help=help)





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


def _apply(opts):
    def deco(f):
        for o in reversed(opts):
            f = o(f)
        return f
    return deco


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


def _secret(path: Path | None, from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return None


