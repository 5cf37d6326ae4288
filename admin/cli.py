"""`flask admin ...`: the console's operator accounts, managed on a bridge host. Passwords are
prompted for (twice) or read from standard input, never taken as arguments (shell history)."""

from __future__ import annotations

import getpass
import sys

import click
from flask.cli import with_appcontext

from admin import accounts
from admin.services import record
from extensions import db


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (OSError, KeyError):  # no user name in a bare container
        return "cli"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")


def _show_totp(uri: str) -> None:
    click.echo("Add this to the operator's authenticator app now (as text or a QR code); it is not shown again:")
    click.echo(uri)


@click.group("admin", help="Operators of the console at /admin.")
def admin_cli():
    pass


def _operator(username: str):
    try:
        return accounts.get_operator(username)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None


@admin_cli.command("create-user")
@click.argument("username")
@click.option("--totp", is_flag=True, help="Also require a TOTP code (prints the otpauth:// URI once).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@with_appcontext
def create_user(username, totp, password_stdin):
    """Create an operator (passwords: at least 12 characters)."""
    try:
        accounts.check_username(accounts.normalise_username(username))
        operator, uri = accounts.create_operator(username, _read_password(password_stdin), with_totp=totp)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    record("operator_created", operator=_actor(), target=operator.username, detail="password+totp" if totp else "password")
    db.session.commit()
    click.echo(f"created operator {operator.username}")
    if uri:
        _show_totp(uri)


@admin_cli.command("list-users")
@with_appcontext
def list_users():
    """One line per operator (no secrets)."""
    operators = accounts.list_operators()
    if not operators:
        click.echo("no operators yet (flask admin create-user NAME)")
        return
    click.echo(f"{'USERNAME':<24} {'STATUS':<9} {'TOTP':<5} {'CREATED (UTC)':<20} LAST SIGN-IN (UTC)")
    for o in operators:
        last = f"{o.last_sign_in_at:%Y-%m-%d %H:%M:%S}" if o.last_sign_in_at else "never"
        click.echo(f"{o.username:<24} {'disabled' if o.disabled_at else 'active':<9} {'yes' if o.has_totp else 'no':<5} "
                   f"{o.created_at:%Y-%m-%d %H:%M:%S}  {last}")


@admin_cli.command("reset-password")
@click.argument("username")
@click.option("--totp", is_flag=True, help="Also enrol a new TOTP secret (the old one stops working).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@with_appcontext
def reset_password(username, totp, password_stdin):
    """Set a new password; the operator's sessions end."""
    operator = _operator(username)
    try:
        uri = accounts.reset_password(operator, _read_password(password_stdin), with_totp=totp)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    record("password_reset", operator=_actor(), target=operator.username, detail="new totp" if totp else None)
    db.session.commit()
    click.echo(f"new password set for {operator.username}; their sessions have ended")
    if uri:
        _show_totp(uri)


@admin_cli.command("disable-user")
@click.argument("username")
@with_appcontext
def disable_user(username):
    """Stop an operator from signing in; their sessions end at once."""
    operator = _operator(username)
    accounts.disable_operator(operator)
    record("operator_disabled", operator=_actor(), target=operator.username)
    db.session.commit()
    click.echo(f"disabled {operator.username}")


@admin_cli.command("enable-user")
@click.argument("username")
@with_appcontext
def enable_user(username):
    """Let a disabled operator sign in again."""
    operator = _operator(username)
    accounts.enable_operator(operator)
    record("operator_enabled", operator=_actor(), target=operator.username)
    db.session.commit()
    click.echo(f"enabled {operator.username}")


@admin_cli.command("unlock")
@click.argument("username")
@with_appcontext
def unlock(username):
    """Lift a sign-in lockout of this account (from every client) at once."""
    operator = _operator(username)
    count = accounts.unlock(operator.username)
    record("operator_unlocked", operator=_actor(), target=operator.username, detail=f"{count} failed attempts forgotten")
    db.session.commit()
    click.echo(f"unlocked {operator.username} ({count} failed attempts forgotten)")
