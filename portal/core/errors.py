"""One exception hierarchy. The CLI and the webhook each turn these into output in exactly one place."""

from __future__ import annotations

from gettext import NullTranslations


class PortalError(Exception):
    """An error a user can act on. `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConfigError(PortalError):
    """The configuration (portal.toml or a PORTAL_* variable) is invalid."""


class ExportInvalid(PortalError):
    """The AR export failed validation; `problems` holds every `file:line: column: message`."""

    exit_code = 2

    def __init__(self, problems: list[str], warnings: list[str] | None = None):
        super().__init__(f"the export is invalid: {len(problems)} error(s)")
        self.problems = problems
        self.warnings = warnings or []


class BuildError(PortalError):
    """The build refused to go on (for example two outputs would land on the same path)."""


class NotFound(PortalError):
    """A customer, invoice or token that does not exist (or must look as if it did not)."""

    exit_code = 3


class CustomerRefusal(PortalError):
    """Something a customer asked for that cannot be done, said in the customer's language. Made from an English
    `template` marked `N_()` and named `params`: the page shows `text(t)` in the customer's language; `message`
    stays English, for the logs and the staff."""

    def __init__(self, template: str, **params: object):
        super().__init__(template % params if params else template)
        self.template, self.params = template, params

    def text(self, t: NullTranslations) -> str:
        translated = t.gettext(self.template)
        return translated % self.params if self.params else translated
