"""Customer-facing text in the customer's language (docs/translations.md).

`translations_for(locale)` gives the translations of a customer's `locale` (customers.csv): the catalog of
the locale itself (`de_AT`), else of its language (`de`), else the default language (English, the language
the source strings are written in). Every lookup of one process returns the same object for a language, so
callers may keep it; it is never changed after loading, so threads may share it.

The catalogs are `portal/locale/<lang>/LC_MESSAGES/messages.po`, read at run time and compiled in memory
(`_load`). The compiled `.mo` is a build output that git does not keep; reading the `.po` means a fresh clone,
an editable install and a wheel all work with no compile step that someone could forget, at the cost of
parsing a few hundred messages once per language per process (a few milliseconds). A `.mo` that `make
messages` compiled is used instead when it is at least as new as its `.po` (a stale one never is).

Pages and emails never install a language on a shared template environment (renders run concurrently, in
threads in the webhook): `portal.core.templating.make_environment(settings, language)` makes one environment
per language instead.
"""

from __future__ import annotations

import gettext
import hashlib
import io
import threading
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"
# The languages the project ships complete catalogs for (tests/core/test_i18n.py holds each to that).
SHIPPED = ("en", "de", "fr", "es", "nl", "ja")

_lock = threading.Lock()


def N_(message: str) -> str:  # noqa: N802 - the name gettext's tools know: marks a string for extraction only
    """Marks text that is translated later, where it is shown (module-level tables of labels)."""
    return message


def _catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def available_languages() -> tuple[str, ...]:
    """Every language with a catalog in the package (the shipped ones, plus any a deployment added)."""
    return tuple(sorted(p.name for p in LOCALE_DIR.iterdir() if _catalog_path(p.name).is_file()))


def _chain(locale: str | None) -> list[str]:
    text = (locale or "").strip().replace("-", "_")
    if not text:
        return []
    try:
        parsed = Locale.parse(text)
    except (ValueError, TypeError, UnknownLocaleError):
        return []
    return [str(parsed), parsed.language]


def language_for(locale: str | None, default: str | None = None) -> str:
    """The catalog to use for a customer's `locale`: `de_AT` -> `de_AT` if there is one, else `de`, else the
    `default` locale's (the configured `default_locale`: `fr_FR` -> `fr`), else English. An unknown or malformed
    locale falls back the same way (the export's reader accepts any text)."""
    for candidate in [*_chain(locale), *_chain(default), DEFAULT_LANGUAGE]:
        if _catalog_path(candidate).is_file():
            return candidate
    return DEFAULT_LANGUAGE


@lru_cache(maxsize=64)
def _load(language: str) -> gettext.NullTranslations:
    po = _catalog_path(language)
    if not po.is_file():
        return gettext.NullTranslations()
    mo = po.with_suffix(".mo")
    if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as fp:
            return Translations(fp, domain=DOMAIN)
    with po.open("rb") as fp:
        catalog = read_po(fp, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)  # a fuzzy entry is a guess: shown as the English source
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@lru_cache(maxsize=64)
def catalog_digest(language: str) -> str:
    """What a language's catalog holds, as a short digest: part of what a kept PDF is named by
    (portal/build/documents.py), so a changed translation makes a new PDF instead of serving the old words."""
    po = _catalog_path(language)
    return hashlib.sha256(po.read_bytes()).hexdigest()[:16] if po.is_file() else ""


def translations_for(locale: str | None, default: str | None = None) -> gettext.NullTranslations:
    """The translations for a customer's `locale`, falling back to `default`'s language, then English (see
    `language_for`): an object with `gettext`, `ngettext`, `pgettext` and `npgettext`, like the standard
    library's `gettext.GNUTranslations`. Safe to share across threads; cached per process."""
    language = language_for(locale, default)
    with _lock:  # lru_cache may run _load twice for one language under threads; the lock keeps it one object
        return _load(language)


def html_lang(locale: str | None, default: str | None = None) -> str:
    """The `lang` attribute for a page or email in the customer's language: the catalog's language in BCP 47
    form (`de`, `pt-BR`), so the text and the attribute always agree."""
    return language_for(locale, default).replace("_", "-")
