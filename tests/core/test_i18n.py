"""The shipped catalogs (portal/locale) and the language a customer gets (portal/core/i18n.py).

Every shipped catalog translates every message the code and the customer-facing templates mark (a fresh
extraction with babel.cfg, so a string added without `make messages` fails here too), with nothing fuzzy and
every placeholder kept. The fallback chain goes from the customer's locale to its language to the configured
default to English.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from portal.core import i18n
from portal.core.i18n import SHIPPED, html_lang, language_for, translations_for

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _catalog(language: str, folder: Path = i18n.LOCALE_DIR) -> Catalog:
    with (folder / language / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        return read_po(fp, locale=language)


def _extracted() -> set[str]:
    """What `make messages` extracts now (babel.cfg, keyword N_ added), as msgids (the singular of a plural)."""
    with (ROOT / "babel.cfg").open() as fp:
        method_map, options_map = parse_mapping_cfg(fp)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords):
        found.add(message if isinstance(message, str) else message[0])
    return found


def _problems(catalog: Catalog) -> list[str]:
    problems = []
    for message in catalog:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        if message.fuzzy:
            problems.append(f"fuzzy: {key!r}")
        if not all(strings):
            problems.append(f"untranslated: {key!r}")
        # Every named value kept (a translation that drops %(number)s loses the invoice number), none invented.
        # A plural's forms may leave out the count itself (Japanese has one form: it must still say the rest).
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        wanted = set().union(*(set(PLACEHOLDER.findall(i)) for i in ids))
        needed = wanted - ({"num"} if len(ids) > 1 else set())
        for text in filter(None, strings):
            found = set(PLACEHOLDER.findall(text))
            if not needed <= found or not found <= wanted:
                problems.append(f"placeholders: {key!r} -> {text!r}")
    # Babel's own checks: a python-format placeholder malformed, the wrong number of plural forms.
    problems += [f"{message.id!r}: {'; '.join(map(str, errors))}" for message, errors in catalog.check()]
    return problems


@pytest.mark.parametrize("language", SHIPPED)
def test_a_shipped_catalog_translates_every_marked_message_with_nothing_fuzzy(language):
    catalog = _catalog(language)
    assert not catalog.fuzzy, f"{language}: the catalog's header is marked fuzzy"
    assert _problems(catalog) == []
    present = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    missing = sorted(_extracted() - present)
    assert not missing, f"{language}: not in the catalog (run `make messages`, then translate): {missing[:10]}"


def test_an_untranslated_or_fuzzy_message_is_found():
    """The check above can fail: a catalog with an empty, a fuzzy and a placeholder-losing entry."""
    catalog = Catalog(locale="de")
    catalog.add("Open", "Offen")
    catalog.add("Paid", "")
    catalog.add("Closed", "Geschlossen", flags=["fuzzy"])
    catalog.add("Invoice %(number)s", "Rechnung", flags=["python-format"])
    problems = _problems(catalog)
    assert any(p.startswith("untranslated: 'Paid'") for p in problems)
    assert any(p.startswith("fuzzy: 'Closed'") for p in problems)
    assert any("Invoice %(number)s" in p for p in problems)
    assert not any("'Open'" in p for p in problems)


@pytest.mark.parametrize(("locale", "default", "expected"), [
    ("de_AT", None, "de"), ("de_DE", None, "de"), ("de", None, "de"), ("ja_JP", None, "ja"),
    ("fr_CA", None, "fr"), ("es-MX", None, "es"), ("nl_BE", None, "nl"), ("en_GB", None, "en"),
    ("pt_BR", None, "en"),  # no Portuguese catalog: the default, English
    ("pt_BR", "fr_FR", "fr"),  # ... or the configured default locale's language
    ("", "de_DE", "de"), (None, None, "en"), ("not a locale!", None, "en"), ("xx_YY", "nl_NL", "nl"),
])
def test_the_language_falls_back_from_locale_to_language_to_the_default(locale, default, expected):
    assert language_for(locale, default) == expected
    assert html_lang(locale, default) == expected


def test_a_customer_locale_gets_its_languages_translations():
    assert translations_for("de_AT").gettext("Statement of account") == "Kontoauszug"
    assert translations_for("ja_JP").gettext("Statement of account") == "取引明細書"
    assert translations_for("pt_BR").gettext("Statement of account") == "Statement of account"
    # Plural forms follow the language's rule: French counts 0 and 1 as singular, German only 1.
    fr, de = translations_for("fr_FR"), translations_for("de_DE")
    assert fr.ngettext("Over %(num)d day", "Over %(num)d days", 1) % {"num": 1} == "Plus de 1 jour"
    assert fr.ngettext("Over %(num)d day", "Over %(num)d days", 0) % {"num": 0} == "Plus de 0 jour"
    assert de.ngettext("Over %(num)d day", "Over %(num)d days", 0) % {"num": 0} == "Über 0 Tage"
    assert translations_for("de") is translations_for("de_CH")  # one object per language, shared


def test_the_po_is_read_when_no_fresh_mo_is_there(tmp_path, monkeypatch):
    """A fresh clone has no .mo: the .po is compiled in memory. A .mo older than its .po (stale) is ignored; a
    newer one (`make messages` compiled it) is used."""
    shutil.copytree(i18n.LOCALE_DIR / "de", tmp_path / "de")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n._load.cache_clear()
    try:
        assert translations_for("de").gettext("Paid") == "Bezahlt"
        stale = Catalog(locale="de")
        stale.add("Paid", "STALE")
        mo = tmp_path / "de" / "LC_MESSAGES" / "messages.mo"
        with mo.open("wb") as fp:
            write_mo(fp, stale)
        po = mo.with_suffix(".po")
        os.utime(mo, (po.stat().st_mtime - 60, po.stat().st_mtime - 60))
        i18n._load.cache_clear()
        assert translations_for("de").gettext("Paid") == "Bezahlt"
        os.utime(mo, (po.stat().st_mtime + 60, po.stat().st_mtime + 60))
        i18n._load.cache_clear()
        assert translations_for("de").gettext("Paid") == "STALE"
    finally:
        i18n._load.cache_clear()


def test_a_fuzzy_entry_is_shown_in_english_not_as_a_guess(tmp_path, monkeypatch):
    shutil.copytree(i18n.LOCALE_DIR / "de", tmp_path / "de")
    catalog = _catalog("de", tmp_path)
    catalog["Paid"].flags.add("fuzzy")
    from babel.messages.pofile import write_po
    with (tmp_path / "de" / "LC_MESSAGES" / "messages.po").open("wb") as fp:
        write_po(fp, catalog)
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n._load.cache_clear()
    try:
        assert translations_for("de").gettext("Paid") == "Paid"
        assert translations_for("de").gettext("Open") == "Offen"
    finally:
        i18n._load.cache_clear()
