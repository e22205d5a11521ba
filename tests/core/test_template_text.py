"""Every word a customer reads in a template goes through a translation call (docs/translations.md).

The templates are parsed with Jinja's own parser; what they output as written (TemplateData nodes) is put
together in document order, with each expression standing in as "{…}", and read as HTML: any text with a
letter in it, or a letter in an attribute people read (title, alt, placeholder, aria-label, value of a
button), is text outside `_()` / `ngettext` / `{% trans %}`. Plain-text emails are read as text. Markup,
styles, URLs and punctuation (" · ", "(", ":") are not words.

Covered: the customer pages (templates/pages/), the webhook pages a customer sees, the error page and every
email a customer receives. Staff pages, the staff's emails and the demo's own pages stay English.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import Environment, nodes

from portal.core.templating import BUILTIN_TEMPLATES

LETTER = re.compile(r"[^\W\d_]")
READ_ATTRIBUTES = {"title", "alt", "placeholder", "aria-label", "aria-description", "label"}
# Sent to the collector or shown to staff: English by design (docs/translations.md).
STAFF_EMAILS = {"digest", "dispute_received", "question_received", "autopay_reported", "approver_check",
                "contact_changed"}
CUSTOMER_WEBHOOK_PAGES = ["layout", "link_expired", "message", "pay_status", "dispute_received", "dispute_refused",
                          "unsubscribe", "unsubscribe_done", "promise_received", "promise_refused", "selfservice",
                          "autopay_status"]


def customer_templates() -> list[str]:
    pages = sorted(f"pages/{p.name}" for p in (BUILTIN_TEMPLATES / "pages").glob("*.html"))
    webhook = [f"webhook/{name}.html" for name in CUSTOMER_WEBHOOK_PAGES]
    emails = sorted(f"email/{p.name}" for p in (BUILTIN_TEMPLATES / "email").iterdir()
                    if p.stem not in STAFF_EMAILS and p.suffix in (".html", ".txt"))
    return [*pages, *webhook, "errors/error.html", *emails]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if value and (name in READ_ATTRIBUTES or (tag == "input" and name == "value" and
                                                       dict(attrs).get("type") in ("submit", "button"))):
                if LETTER.search(value):
                    self.found.append(f"{name}={value!r}")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip and LETTER.search(data):
            self.found.append(" ".join(data.split()))


def untranslated_text(source: str, name: str) -> list[str]:
    """The words `source` (a template) outputs as written, outside any translation call."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    tree = env.parse(source, name=name)
    # Expressions (translation calls included) stand in as "{…}": no letter, and no text is joined across them.
    parts = []
    for output in tree.find_all(nodes.Output):
        for child in output.nodes:
            parts.append(child.data if isinstance(child, nodes.TemplateData) else "{…}")
    text = "".join(parts)
    if name.endswith(".txt"):
        return [" ".join(line.split()) for line in text.splitlines() if LETTER.search(line)]
    reader = _Reader()
    reader.feed(text)
    reader.close()
    return reader.found


@pytest.mark.parametrize("template", customer_templates())
def test_customer_facing_template_has_no_text_outside_a_translation_call(template):
    source = (BUILTIN_TEMPLATES / template).read_text(encoding="utf-8")
    assert untranslated_text(source, template) == []


@pytest.mark.parametrize(("source", "name", "expected"), [
    ("<p>Hello {{ name }}</p>", "x.html", ["Hello {…}"]),
    ('<p>{{ _("Hello %(n)s", n=name) }}</p>', "x.html", []),
    ("{% trans %}Hello{% endtrans %} <b>{{ x }}</b>", "x.html", []),
    ('<a href="{{ url }}" style="color: red">Open</a>', "x.html", ["Open"]),
    ('<a href="{{ url }}" style="color: red">{{ _("Open") }}</a> · ({{ n }})', "x.html", []),
    ('<div aria-label="Open invoices table"></div>', "x.html", ["aria-label='Open invoices table'"]),
    ('<div aria-label="{{ _(\'Open invoices table\') }}"></div>', "x.html", []),
    ("{% if a %}Total due: {{ t }}{% endif %}", "x.txt", ["Total due: {…}"]),
    ("{{ _('Total due: %(t)s', t=t) }}\n--\n{{ url }}", "x.txt", []),
    ("<title>{% block title %}Your account{% endblock %}</title>", "x.html", ["Your account"]),
])
def test_the_check_finds_text_written_outside_a_translation_call(source, name, expected):
    """The check above can fail: words in text, attributes and blocks are found; calls and markup are not."""
    assert untranslated_text(source, name) == expected


def test_every_customer_template_is_checked():
    """A customer template added later is covered without editing the list (pages and emails by folder)."""
    names = set(customer_templates())
    assert {"pages/account.html", "pages/invoice.html", "pages/statement.html", "pages/base.html",
            "email/invoices.txt", "email/invoices.html", "email/reminder.html", "webhook/link_expired.html",
            "webhook/pay_status.html", "webhook/unsubscribe.html"} <= names
    for path in (BUILTIN_TEMPLATES / "webhook").glob("*.html"):
        assert f"webhook/{path.name}" in names or path.stem.startswith("demo_"), path.name
    assert Path(BUILTIN_TEMPLATES / "email" / "digest.txt").is_file()
