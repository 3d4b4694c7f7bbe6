"""The web UI's users."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from bems.cli import main
from bems.cli.common import _cli_user, db_option
from bems.storage import Store


@main.group()
def user() -> None:
    """Users of the web UI: viewer, operator (overrides, schedules), admin.

    Example:

    \b
        bems user add lan --role operator --db bems.sqlite
    """


_db_option = db_option()
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


@main.group()
def token() -> None:
    """Bearer tokens of the read API (/api/v1/): made, listed, revoked.

    Example:

    \b
        bems token create grafana --scope read --expires 365 --db bems.sqlite
    """


@token.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read"]), default="read", show_default=True,
              help="What the token may do (read: every GET of /api/v1/).")
@click.option("--expires", "expires_days", type=click.IntRange(1, 3660), default=None,
              help="Days until it stops working (default: never; revoke it then).")
@_db_option
def token_create(name: str, scope: str, expires_days: int | None, db_path: Path) -> None:
    """Make a token and print it once (only its hash is kept).

    Example:

    \b
        bems token create ioc --expires 90 --db bems.sqlite
    """
    from bems import tokens

    with Store(db_path) as store:
        t = tokens.create(store, name, scope, dt.datetime.now(dt.timezone.utc), expires_days,
                          by=_cli_user())
    click.echo(t)


@token.command("list")
@_db_option
def token_list(db_path: Path) -> None:
    """The tokens: name, scope, made, expires, revoked, last used, uses in the last 31 days.

    Example:

    \b
        bems token list --db bems.sqlite
    """
    def day(t):
        return t.strftime("%Y-%m-%d") if t else "-"

    with Store(db_path) as store:
        rows = store.tokens()
    if not rows:
        click.echo("no tokens")
    for t in rows:
        state = "revoked" if t["revoked"] else "active"
        click.echo(f"{t['name']}\t{t['scope']}\t{state}\tmade {day(t['created'])}\t"
                   f"expires {day(t['expires'])}\tlast used {day(t['last_used'])}\t"
                   f"{sum(t['uses'].values())} uses")


@token.command("revoke")
@click.argument("name")
@_db_option
def token_revoke(name: str, db_path: Path) -> None:
    """Stop a token at once.

    Example:

    \b
        bems token revoke ioc --db bems.sqlite
    """
    from bems.errors import BemsError

    now = dt.datetime.now(dt.timezone.utc)
    with Store(db_path) as store:
        if not store.revoke_token(name, now):
            raise BemsError(f"no active token named {name!r}")
        store.audit(_cli_user(), "token.revoke", {"name": name}, now)
    click.echo(f"revoked {name}")
