"""The `portal` command (the console script and `python -m portal`): the group of portal/cli/group.py with every
command registered on it, here and only here.

Each command group lives in a module of its own and imports only the group's shared parts (portal/cli/group.py),
never this module, so registering them here closes no import cycle. `portal serve`, the development server, is
the webhook's (webhook/devserver.py: nothing in `portal` may import the web layer); the group finds it through
the `portal.commands` entry point in pyproject.toml.
"""

from __future__ import annotations

from portal.cli import autopay, db, demo, jobs, mail, reports, site, staff
from portal.cli.group import PortalContext, cli

for command in (*site.COMMANDS, reports.report, db.db, demo.demo, *mail.COMMANDS, staff.staff, *jobs.COMMANDS,
                *autopay.COMMANDS):
    cli.add_command(command)


def main() -> None:
    cli(obj=PortalContext(), auto_envvar_prefix=None)


if __name__ == "__main__":
    main()
