"""Helpers for the per-language tests: an export with one customer per shipped language, the text a person reads
on a page or in an email, and the English sentences that must not appear in another language."""

from __future__ import annotations

import re
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

from babel.messages.pofile import read_po

from portal.core.i18n import LOCALE_DIR
from tests.site_helpers import rewrite_csv

# customer id (in the sample export, seed 3) -> its locale after `localise_export`
LOCALES = {"C00001": "en_US", "C00002": "de_DE", "C00003": "fr_FR", "C00004": "es_ES", "C00005": "nl_NL",
           "C00006": "ja_JP"}
LANGUAGE_OF = {cid: locale.split("_")[0] for cid, locale in LOCALES.items()}
_PLACEHOLDER_OR_TAG = re.compile(r"%\(\w+\)[sd]|<[^>]*>")
_WORDS = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")


def localise_export(export_dir: Path) -> None:
    """Give the sample export's six customers one shipped locale each (LOCALES)."""
    rewrite_csv(export_dir / "customers.csv",
                lambda row: {**row, "locale": LOCALES.get(row["customer_id"], row["locale"])})


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.lang = ""
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang") or ""
        if tag in ("script", "style"):
            self._skip += 1
        for name in ("aria-label", "title", "alt", "placeholder", "data-msg-mixed", "data-msg-none"):
            if values.get(name):
                self.parts.append(values[name] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def read_html(html: str) -> tuple[str, str]:
    """(the `lang` of <html>, the text a person reads or hears: text nodes and labelled attributes, spaces
    collapsed)."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return parser.lang, " ".join(" ".join(parser.parts).split())


@cache
def english_sentences(language: str) -> tuple[str, ...]:
    """The English pieces of text (two words or more, cut at placeholders and tags) of every message that the
    language's catalog translates differently: none of them may show on a page or in an email in that language."""
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        catalog = read_po(fp, locale=language)
    pieces = set()
    for message in catalog:
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        for english in ids:
            if english in strings:
                continue
            for piece in _PLACEHOLDER_OR_TAG.split(english):
                piece = " ".join(piece.split()).strip(" ,.:;·()")
                if len(_WORDS.findall(piece)) >= 2:
                    pieces.add(piece)
    return tuple(sorted(pieces))


def english_found(text: str, language: str) -> list[str]:
    """The English sentences (english_sentences) that occur in `text`, whole words only."""
    return [piece for piece in english_sentences(language)
            if re.search(r"(?<![A-Za-z])" + re.escape(piece) + r"(?![A-Za-z])", text)]
