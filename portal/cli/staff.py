"""`portal staff ...`: staff accounts for the /staff dashboard (docs/staff.md).

Passwords are read from a hidden prompt (asked twice) or, with --password-stdin, from the first line of
standard input (for scripts); never from an argument, where `ps` and shell history would show them.
"""

from __future__ import annotations

import sys

import click

from portal.cli.group import PortalContext, pass_portal
from portal.staff.users import ROLES


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group("staff")
def staff() -> None:
    """Staff accounts for /staff: add, list, change role, disable, reset password."""


@staff.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True,
              help="admin also resolves disputes and manages staff.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@pass_portal
def add(portal: PortalContext, email: str, role: str, password_stdin: bool) -> None:
    """Create a staff user (the password is hashed with argon2id)."""
    from portal.staff.users import add_user

    user = add_user(portal.store(), email, _password(password_stdin), role)
    click.echo(f"added {user.email} ({user.role})")


@staff.command("list")
@pass_portal
def list_(portal: PortalContext) -> None:
    """Every staff user with role, state and last login (UTC)."""
    from portal.staff.users import list_users

    for user in list_users(portal.store()):
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        state = "active" if user.active else "disabled"
        click.echo(f"{user.email:<40} {user.role:<7} {state:<9} last login {last}")


@staff.command("set")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default=None, help="New role.")
@click.option("--disable", "active", flag_value=False, default=None, help="Refuse this user's logins.")
@click.option("--enable", "active", flag_value=True, help="Allow this user's logins again.")
@click.option("--password", "new_password", is_flag=True, help="Set a new password (prompt, or --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="With --password: read it from standard input.")
@pass_portal
def set_(portal: PortalContext, email: str, role: str | None, active: bool | None, new_password: bool,
         password_stdin: bool) -> None:
    """Change a user's role, disable or enable it, or reset its password. Ends the user's sessions."""
    from portal.staff.users import update_user

    if role is None and active is None and not new_password:
        raise click.UsageError("nothing to change: give --role, --disable, --enable or --password")
    password = _password(password_stdin) if new_password else None
    user = update_user(portal.store(), email, role=role, active=active, password=password)
    click.echo(f"{user.email}: {user.role}, {'active' if user.active else 'disabled'}; sessions ended")
