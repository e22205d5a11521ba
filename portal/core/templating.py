"""The Jinja2 environment and the shared assets.

Templates are looked up in the user's theme folder first and in the built-in `templates/` second, so a
theme overrides any single file. Autoescaping is always on: every customer string is data.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from portal.core.config import Settings
from portal.core.i18n import LOCALE_DIR, translations_for


def _builtin_templates() -> Path:
    """templates/ next to the package in a checkout (or an editable install); otherwise the copy a regular
    `pip install` puts under <prefix>/share/ar-portal/templates (pyproject.toml's data-files)."""
    checkout = Path(__file__).resolve().parents[2] / "templates"
    if (checkout / "pages").is_dir():
        return checkout
    installed = Path(sysconfig.get_path("data")) / "share" / "ar-portal" / "templates"
    return installed if (installed / "pages").is_dir() else checkout


BUILTIN_TEMPLATES = _builtin_templates()
ASSET_NAMES = ("portal.css", "beacon.js", "pay.js")
# The code that shapes the output: a change to it must re-render every page.
PACKAGE = Path(__file__).resolve().parents[1]  # portal/
RENDER_CODE = [PACKAGE / n for n in ("core/templating.py", "build/pages.py", "build/pdf.py", "core/signing.py",
                                     "core/money.py", "payments/pricing.py", "build/documents.py",
                                     "core/i18n.py")]


def template_dirs(settings: Settings) -> list[Path]:
    dirs = [Path(settings.theme_dir)] if settings.theme_dir else []
    return [*dirs, BUILTIN_TEMPLATES]


def make_environment(settings: Settings, language: str | None = None) -> Environment:
    """The template environment; `language` None: the text as written (English: staff pages), otherwise the
    translations of that locale (portal/core/i18n.py). One environment per language, never a language swapped
    on a shared one: renders run concurrently."""
    loader = ChoiceLoader([FileSystemLoader(str(d)) for d in template_dirs(settings)])
    env = Environment(loader=loader, autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, auto_reload=False, extensions=["jinja2.ext.i18n"])
    # Customer-facing text is written as `_("...")` / `{% trans %}` (docs/translations.md).
    if language is None:
        env.install_null_translations(newstyle=True)
    else:
        env.install_gettext_translations(translations_for(language), newstyle=True)  # type: ignore[attr-defined]
    return env


@dataclass(frozen=True)
class Assets:
    """Content-hashed asset files: `urls` maps 'portal.css' -> 'assets/portal.3f2a9c1b4d5e.css'."""

    urls: dict[str, str]
    files: dict[str, bytes]


def load_assets(settings: Settings) -> Assets:
    urls, files = {}, {}
    for name in ASSET_NAMES:
        for folder in template_dirs(settings):
            path = folder / "assets" / name
            if path.is_file():
                data = path.read_bytes()
                stem, ext = name.rsplit(".", 1)
                key = f"assets/{stem}.{hashlib.sha256(data).hexdigest()[:12]}.{ext}"
                urls[name], files[key] = key, data
                break
    return Assets(urls, files)


def render_fingerprint(settings: Settings) -> str:
    """Changes when anything other than the data could change a page: templates, code, settings."""
    digest = hashlib.sha256()
    for folder in template_dirs(settings):
        # Only what pages are made of: their templates and the assets they link. Email, webhook and staff
        # templates do not shape a page, and editing them must not re-render every customer.
        shaping = [*sorted((folder / "pages").rglob("*")), *(folder / "assets" / name for name in ASSET_NAMES)]
        for path in shaping:
            if path.is_file():
                digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    # The catalogs: a corrected translation re-renders the pages it shows on.
    for path in sorted(LOCALE_DIR.rglob("*.po")):
        digest.update(str(path.relative_to(LOCALE_DIR)).encode() + b"\0" + path.read_bytes())
    for path in RENDER_CODE:
        digest.update(path.read_bytes())
    shown = (settings.site_url, settings.effective_webhook_url, settings.company_name, settings.support_email,
             settings.payments_enabled, settings.render_pdfs, settings.aging_buckets,
             hashlib.sha256(settings.secret_key.encode()).hexdigest(),
             # What the PDFs show besides the data: a page links each PDF under the name of its content.
             settings.company_address, settings.company_tax_id, settings.remit_to, settings.bank_details,
             settings.font_dir,
             hashlib.sha256(Path(settings.company_logo).read_bytes()).hexdigest() if settings.company_logo else "")
    digest.update(repr(shown).encode())
    return digest.hexdigest()
