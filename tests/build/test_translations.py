"""Pages and the invoice email in each shipped language (docs/translations.md).

One build of the sample export with one customer per shipped locale: each customer's account, invoice and
statement pages, and the invoice email it is sent, are in its language (the catalog's words are there, no
English sentence of the catalog is), and `lang` says so.
"""

from __future__ import annotations

import csv
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from portal.build.pipeline import build
from portal.core.i18n import translations_for
from portal.mail.sending import send_invoices
from portal.publish.manifest import Manifest
from tests.i18n_helpers import LANGUAGE_OF, LOCALES, english_found, localise_export, read_html

# Words each page must show, in the customer's language (present on every page of that kind).
ACCOUNT_WORDS = ("Overview", "Statement of account", "Question or dispute", "Skip to content")
STATEMENT_WORDS = ("Statement of account", "Date", "Balance", "Opening balance", "Closing balance")
INVOICE_WORDS = ("Invoice total", "Issued", "Documents", "Pay online")


@pytest.fixture
def built(settings, store, export_dir, tmp_path):
    localise_export(export_dir)
    out = tmp_path / "site"
    build(export_dir, out, settings, store=store)
    keys = {cid: entry["key"] for cid, entry in Manifest.load(out).customers.items()}
    with open(export_dir / "documents.csv", newline="", encoding="utf-8") as handle:
        titles = {row["title"] for row in csv.DictReader(handle)}
    return {"out": out, "keys": keys, "settings": settings, "store": store, "titles": titles}


def _without_data(text: str, built) -> str:
    """The page's text without the export's document titles: data as the ERP wrote it, not the portal's words."""
    for title in sorted(built["titles"], key=len, reverse=True):
        text = text.replace(title, "")
    return text


def _pages(built, customer_id: str) -> dict[str, str]:
    folder = built["out"] / "c" / built["keys"][customer_id]
    invoice = sorted((folder / "i").glob("*.html"))[0]
    return {"account": (folder / "index.html").read_text("utf-8"),
            "statement": (folder / "statement.html").read_text("utf-8"), "invoice": invoice.read_text("utf-8")}


def _matches(translated: str, text: str) -> bool:
    """Whether `text` is the translated message with some values filled in."""
    pattern = "".join(".+" if part.startswith("%(") else re.escape(part)
                      for part in re.split(r"(%\(\w+\)[sd])", translated))
    return re.fullmatch(pattern, text) is not None


def _expect(language: str, text: str, words: tuple[str, ...]) -> None:
    t = translations_for(language)
    for english in words:
        assert t.gettext(english) in text, f"{language}: {t.gettext(english)!r} ({english}) missing"


@pytest.mark.parametrize("customer_id", sorted(LOCALES))
def test_pages_are_in_the_customers_language_with_no_english_sentence(built, customer_id):
    language = LANGUAGE_OF[customer_id]
    for name, html in _pages(built, customer_id).items():
        lang, text = read_html(html)
        assert lang == language, f"{name}: lang={lang!r}"
        _expect(language, text, {"account": ACCOUNT_WORDS, "statement": STATEMENT_WORDS,
                                 "invoice": INVOICE_WORDS}[name])
        if language != "en":
            assert english_found(_without_data(text, built), language) == [], f"{language} {name} page"


def test_the_japanese_pages_say_japanese_things(built):
    """Not only "translated": the Japanese account page reads as Japanese (a spot check a reader can follow)."""
    _, text = read_html(_pages(built, "C00006")["account"])
    assert "取引明細書" in text and "オンラインでのお支払い" in text and "お問い合わせ・異議申立て" in text


def test_the_english_check_finds_english(built):
    """The check above can fail: a German page with one English sentence put back is caught."""
    html = _pages(built, "C00002")["account"].replace("Online bezahlen", "Pay online")
    _, text = read_html(html)
    assert english_found(text, "de") == ["Pay online"]


@pytest.mark.parametrize("customer_id", sorted(LOCALES))
def test_the_invoice_email_is_in_the_customers_language(built, customer_id, tmp_path: Path):
    language = LANGUAGE_OF[customer_id]
    outbox = tmp_path / "outbox"
    settings = built["settings"].replace(mail_url=f"outbox:{outbox}")
    result = send_invoices(settings, built["store"], customer_ids=[customer_id])
    assert result.having("sent"), result.skipped
    t = translations_for(language)
    for path in sorted(outbox.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        subject = str(message["Subject"])
        plain = message.get_body(("plain",)).get_content()
        lang, html_text = read_html(message.get_body(("html",)).get_content())
        assert lang == language
        # The subject names the invoice or counts them, in the language's words.
        subjects = [t.gettext("Invoice %(number)s from %(company)s"),
                    *(t.ngettext("%(num)d invoice from %(company)s", "%(num)d invoices from %(company)s", n)
                      for n in (2, 5))]
        assert any(_matches(form, subject) for form in subjects), (subject, subjects)
        for text in (plain, html_text):
            assert t.gettext("Hello %(name)s,").split("%(name)s")[0].strip() in text or t.gettext("Hello,") in text
            assert t.gettext("Invoice %(number)s").split("%")[0].strip() in text
        if language != "en":
            assert english_found(subject, language) == []
            assert english_found(" ".join(plain.split()), language) == [], f"{language} plain text"
            assert english_found(html_text, language) == [], f"{language} HTML"
