"""The position property test's scenario (tests/balances/test_position_property.py): its invoices and credit
note, and `OutputChecks.check`, which reads every output the product makes as a person gets it
(tests/position_outputs.py) and compares each invoice's open amount and status with the model
(tests/position_model.py). Mixed into tests/position_world.py's `World`, whose state it reads.
"""

from __future__ import annotations

import json
import re
import shutil

from sqlalchemy import delete

from portal.store.mail import mail_sent
from tests.position_model import ASKABLE, LABELS
from tests.position_outputs import (
    csv_rows,
    downloaded_pdfs,
    mails,
    major,
    standing_lines,
    table_with,
    tables,
    text_of,
    usd,
)

INVOICES = {  # id: (number, amount, due in days)
    "I1": ("INV-100021", 50360, -12), "I2": ("INV-100022", 120000, 20), "I3": ("INV-100023", 9999, -40)}
CREDIT = ("CR1", "CM-5001", 2500)


class OutputChecks:
    """What `World` checks after every step (see the module docstring)."""

    # --- reading every output ------------------------------------------------------------------------------------

    def check(self) -> None:
        m = self.model
        numbers = {iid: n for iid, (n, _, _) in INVOICES.items()}
        want = {iid: (m.open(iid), m.status(iid)) for iid in INVOICES}
        listed = {iid for iid in INVOICES if m.invoices[iid].in_export}
        askable = {iid for iid in listed if m.status(iid) in ASKABLE}
        from portal.balances import stored  # here: the regression tests drive this World on code from before it

        with self.store.begin() as conn:
            assert stored.stored(conn) == stored.recomputed(conn)
        self._customer_pages(numbers, want, listed)
        self._step_mail(numbers, want)
        self._mail_commands(numbers, askable)
        self._staff(numbers, want, listed)
        self._reports(numbers, want, listed)

    def _customer_pages(self, numbers, want, listed) -> None:
        m = self.model
        [folder] = (self.site / "c").iterdir()
        account = (folder / "index.html").read_text()
        rows = table_with(account, "Invoice", "Open", "Status") or [[]]
        shown = {r[0]: r for r in rows[1:]}
        assert set(shown) == {numbers[i] for i in listed}, account
        for iid in listed:
            row = shown[numbers[iid]]
            # A paid invoice's badge says when it was paid ("Paid on DATE", docs/selfservice.md).
            label = re.sub(r"^Paid on .+$", "Paid", row[5].split(" · ")[0])
            assert (row[4], label) == (usd(want[iid][0]), LABELS[want[iid][1]]), (iid, row)
            page = (folder / "i" / f"{iid}.html").read_text()
            text = text_of(page)
            assert f"Invoice {numbers[iid]} {LABELS[want[iid][1]]}" in text and f"Open {usd(want[iid][0])}" in text
        assert {p.stem for p in (folder / "i").glob("*.html")} == listed
        statement = (folder / "statement.html").read_text()
        credit = m.credits[CREDIT[0]]
        closing = sum(want[i][0] for i in listed) - (m.available(CREDIT[0]) if credit.balance > 0 else 0)
        blocks = [t for t in tables(statement) if t and "Description" in t[0]]
        if blocks:
            assert blocks[0][-1][-1] == usd(closing) and blocks[0][-1][0] == "Closing balance"
        else:
            assert closing == 0 and "Nothing is open." in statement
        key = folder.name
        pdfs = downloaded_pdfs(self.client, *(p.read_text() for p in (self.site / "c" / key).rglob("*.html")))
        for iid in listed:
            text = pdfs[f"Invoice {numbers[iid]}"]
            assert f"Open {usd(want[iid][0])}" in text and f"Status {LABELS[want[iid][1]]}" in text, text
        if blocks:
            assert f"Closing balance {usd(closing)}" in pdfs["Statement of account"]

    def _step_mail(self, numbers, want) -> None:
        """Payment and dispute emails of this step say where the invoices they name stand now."""
        by_number = {n: iid for iid, n in numbers.items()}
        for subject, _, text in mails(self.tmp / "outbox"):
            lines = standing_lines(text)
            named = set(re.findall(r"INV-\d+", text.split("Where the invoice")[0]))
            assert {number for number, _, _ in lines} == named, (subject, text)  # each invoice it names
            for number, amount, status in lines:
                iid = by_number[number]
                assert (amount, status) == (usd(want[iid][0]), want[iid][1]), (subject, text)

    def _mail_commands(self, numbers, askable) -> None:
        m = self.model
        by_number = {n: iid for iid, n in numbers.items()}
        # `portal send --resend`: every invoice that may be asked for, for what it owes, and nothing else.
        self.cli("send", "--resend", mail="send")
        sent = mails(self.tmp / "send")
        assert len(sent) == (1 if askable else 0)
        for _, _, text in sent:
            items = dict((n, (a, s)) for n, a, s in re.findall(
                r"Invoice (INV-\d+).*?\n.*?balance due (\$[\d,]+\.\d\d) \(([a-z ]+)\)", text, re.S))
            assert {by_number[n] for n in items} == askable, text
            for n, (amount, status) in items.items():
                assert (amount, status) == (usd(m.due(by_number[n])), m.status(by_number[n])), text
            if len(askable) > 1:
                assert f"Total due: {usd(sum(m.due(i) for i in askable))}" in text
        # `portal remind`, every rule made to fire (its history cleared: each check is a first reminder).
        with self.store.begin() as conn:
            conn.execute(delete(mail_sent).where(mail_sent.c.kind == "reminder"))
        self.cli("remind", mail="remind")
        reminded = mails(self.tmp / "remind")
        assert len(reminded) == (1 if askable else 0)
        for _, _, text in reminded:
            items = dict((n, (a, s)) for n, a, s in re.findall(
                r"Invoice (INV-\d+): (\$[\d,]+\.\d\d) \(([a-z ]+)\)", text))
            assert {by_number[n] for n in items} == askable, text
            for n, (amount, status) in items.items():
                assert (amount, status) == (usd(m.due(by_number[n])), m.status(by_number[n])), text
        # `portal digest`: "nobody viewed it" only for what may be asked for.
        self.cli("digest", mail="digest")
        digests = mails(self.tmp / "digest")
        assert digests or not askable
        for _, _, text in digests:
            items = dict((n, (a, s)) for n, a, s in re.findall(
                r"invoice (INV-\d+), (\$[\d,]+\.\d\d) \(([a-z ]+)\)", text))
            assert {by_number[n] for n in items} == askable, text
            for n, (amount, status) in items.items():
                assert (amount, status) == (usd(m.due(by_number[n])), m.status(by_number[n])), text
        shutil.rmtree(self.tmp / "send", ignore_errors=True)
        shutil.rmtree(self.tmp / "remind", ignore_errors=True)
        shutil.rmtree(self.tmp / "digest", ignore_errors=True)

    def _staff(self, numbers, want, listed) -> None:
        def get(url: str) -> str:
            response = self.staff.get(url)
            assert response.status_code == 200, url
            return response.get_data(as_text=True)

        rows = table_with(get("/staff/receipts"), "Invoice", "Open", "Status") or [[]]
        head = rows[0]
        shown = {r[head.index("Invoice")].split(" ")[0]: r for r in rows[1:] if len(r) == len(head)}
        assert set(shown) == {numbers[i] for i in listed}
        for iid in listed:
            r = shown[numbers[iid]]
            assert (r[head.index("Open")].split("\n")[0], r[head.index("Status")]) == (
                usd(want[iid][0]), want[iid][1]), r
        rows = table_with(get("/staff/customer?id=C1"), "Invoice", "Open", "Status") or [[]]
        head = rows[0]
        shown = {r[0]: r for r in rows[1:] if len(r) == len(head)}
        assert set(shown) == {numbers[i] for i in listed}
        for iid in listed:
            assert (shown[numbers[iid]][head.index("Open")], shown[numbers[iid]][head.index("Status")]) == (
                usd(want[iid][0]), want[iid][1])
        expected = {numbers[i]: (usd(want[i][0]), want[i][1]) for i in INVOICES}
        for line in re.findall(r'(INV-\d+): \$[\d,.]+<br><span class="muted">now (\$[\d,.]+) open, ([a-z ]+)<',
                               get("/staff/payments")):
            assert (line[1], line[2]) == expected[line[0]], line
        for line in re.findall(r"<li>(INV-\d+): (\$[\d,.]+) open, ([a-z ]+)</li>", get("/staff/disputes")):
            assert (line[1], line[2]) == expected[line[0]], line
        total = sum(want[i][0] for i in listed)
        overview = text_of(get("/staff/"))
        assert (f"Open AR, USD {usd(total)}" in overview) if listed else ("nothing open" in overview), overview
        receipts = {r["invoice_id"]: r for r in csv_rows(get("/staff/receipts.csv"))}
        assert set(receipts) == listed
        for iid in listed:
            assert (receipts[iid]["open"], receipts[iid]["status"]) == (major(want[iid][0]), want[iid][1])
        for row in csv_rows(get("/staff/payments.csv")) + csv_rows(get("/staff/disputes.csv")):
            pairs = zip(row["invoice_open"].split(";"), row["invoice_status"].split(";"), strict=True)
            ids = row["invoice_ids"].split(";") if "invoice_ids" in row else [
                {n: i for i, n in numbers.items()}[n] for n in row["invoice_numbers"].split(";")]
            for iid, (amount, status) in zip(ids, pairs, strict=True):
                assert (amount, status) == (major(want[iid][0]), want[iid][1]), row

    def _reports(self, numbers, want, listed) -> None:
        m = self.model
        for r in json.loads(self.cli("report", "receipts", "--format", "json")):
            iid = r["invoice_id"]
            assert (r["open"], r["status"], r["due"]) == (*want[iid], m.due(iid)), r
        for r in csv_rows(self.cli("report", "receipts", "--format", "csv")):
            assert (int(r["open"]), r["status"]) == want[r["invoice_id"]]
        for p in json.loads(self.cli("report", "payments", "--format", "json")):
            for a in p["allocations"]:
                assert (a["open"], a["status"]) == want[a["invoice_id"]], p
        for row in csv_rows(self.cli("report", "payments", "--format", "csv")):
            ids = [part.split(":")[0] for part in row["allocations"].split(";")]
            pairs = zip(row["invoice_open"].split(";"), row["invoice_status"].split(";"), strict=True)
            assert [(int(o), s) for o, s in pairs] == [want[i] for i in ids], row
        for d in json.loads(self.cli("report", "disputes", "--format", "json")):
            for i in d["invoices"]:
                assert (i["open"], i["status"]) == want[i["invoice_id"]], d
        kpis = json.loads(self.cli("report", "kpis", "--format", "json"))
        assert kpis["open_ar"] == ({"USD": sum(want[i][0] for i in listed)} if listed else {})
        applied: dict[str, int] = {}
        for row in csv_rows(self.cli("report", "cash-application")):
            if row["invoice_id"]:
                amount = int(row["amount_applied"].replace(".", ""))
                applied[row["invoice_id"]] = applied.get(row["invoice_id"], 0) + amount
                assert (row["invoice_open"], row["invoice_status"]) == (
                    major(want[row["invoice_id"]][0]), want[row["invoice_id"]][1])
        assert applied == {i: m.settled_total(i) for i in INVOICES if m.settled_total(i)}
