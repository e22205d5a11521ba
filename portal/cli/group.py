"""The `portal` group: its options, the context every command shares, and the one place errors become messages.

- `PortalGroup` turns a `PortalError` raised anywhere below it into `error: <message>` on stderr and the error's
  exit code (an invalid export also lists every problem first): a person never sees a traceback, and a script
  gets the same exit code whatever command failed.
- `PortalContext` is `ctx.obj` for every command: the settings are loaded (and checked) once, the first time a
  command asks for them, and the store is opened (and migrated) once, the first time a command asks for it, and
  closed when the command line ends. Commands receive it with `@pass_portal`; none reads another module's
  private helpers.

The commands themselves live in one module per command group (portal/cli/site.py, reports.py, db.py, demo.py,
mail.py, staff.py) and are registered on `cli` by portal/cli/main.py, the console script's entry point.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import click

from portal.core.config import Settings, load_settings, warn_if_insecure
from portal.core.errors import ExportInvalid, PortalError

if TYPE_CHECKING:
    from portal.store.database import Store


class PortalGroup(click.Group):
    """Errors become messages and exit codes here, and only here.

    Besides the commands registered on it, the group offers those other packages of this distribution declare
    as `portal.commands` entry points (pyproject.toml), loaded only when named: `portal serve` is the webhook's,
    and importing the web layer would slow every other command down (and `portal` may not import it)."""

    PLUGINS = "portal.commands"

    def _plugins(self) -> dict[str, Any]:
        return {plugin.name: plugin for plugin in entry_points(group=self.PLUGINS)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and (plugin := self._plugins().get(cmd_name)) is not None:
            command = plugin.load()
            self.add_command(command, cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExportInvalid as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            for warning in exc.warnings:
                click.echo(f"warning: {warning}", err=True)
            click.echo(f"error: {exc.message}; nothing was written", err=True)
            ctx.exit(exc.exit_code)
        except PortalError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)


class PortalContext:
    """What the commands of one `portal` run share (`ctx.obj`).

    `settings`: loaded from `config` (or ./portal.toml and PORTAL_* variables) on first use, with the insecure-
    setting warnings printed once; settings given up front (a test, an embedding program) are used as they are.
    `store()`: opened and migrated on first use (creating a SQLite file's folder), then the same store for the rest
    of the run; `close()` closes it, and the group calls it when the command line ends.
    """

    def __init__(self, config: str | None = None, settings: Settings | None = None):
        self.config = config
        self._settings = settings
        self._store: Store | None = None

    @classmethod
    def adopt(cls, obj: object, config: str | None) -> PortalContext:
        """The context for this run from what the caller passed as `obj`: a PortalContext (kept; `--config`, when
        given, names its config file), or a dict (the older calling convention: `obj={}` or `{"settings": ...}`)."""
        if isinstance(obj, PortalContext):
            if config is not None:
                obj.config = config
            return obj
        given = obj if isinstance(obj, dict) else {}
        return cls(config if config is not None else given.get("config"), given.get("settings"))

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            settings = load_settings(self.config)
            warn_if_insecure(settings)
            self._settings = settings
        return self._settings

    def use_settings(self, settings: Settings) -> None:
        """Replace the settings for the rest of the run (`portal demo` moves the site to its --host/--port); only
        before the store is opened, which was opened with the settings it had then."""
        if self._store is not None:
            raise RuntimeError("the store is open: its settings can no longer change")
        self._settings = settings

    def store(self) -> Store:
        if self._store is None:
            import portal.balances.stored  # noqa: F401 - the derived tables follow every change (portal/store/derived.py)
            import portal.staff.receiptlines  # noqa: F401 - the receipt lines too
            from portal.store.database import Store
            from portal.store.engine import ensure_sqlite_folder

            settings = self.settings
            ensure_sqlite_folder(settings.database_url)
            store = Store(settings.database_url)
            try:
                store.migrate()
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store

    def close(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            store.close()


pass_portal = click.make_pass_decorator(PortalContext)
"""Hands a command the run's PortalContext (as its first argument)."""


@click.group(cls=PortalGroup)
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Configuration file (default: ./portal.toml if present).")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.version_option(package_name="ar-portal")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: bool) -> None:
    """AR self-service portal: build customers' pages from an ERP export, publish them, serve the webhook."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    ctx.obj = PortalContext.adopt(ctx.obj, config)
    ctx.call_on_close(ctx.obj.close)
