"""The world the position property test (tests/balances/test_position_property.py) and the output tests
(tests/balances/test_outputs.py) drive: one fresh product (database, site folder, webhook app, staff session)
with one customer, three invoices and a credit note, and the independent model of what each owes
(tests/position_model.py). `World` drives the product through its real entry points (`portal build`, `POST /pay`,
signed Stripe events, `POST /dispute`, the staff resolve form, the command line); `check()`
(tests/position_scenario.py) reads every output and compares it with the model.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import stripe
from click.testing import CliRunner

from portal.build.pipeline import build
from portal.cli.main import cli
from portal.core.signing import Signer
from portal.publish.publisher import publish
from portal.store.database import Store
from tests.conftest import TEST_SECRET, make_settings
from tests.position_model import Attempt, Item, Model
from tests.position_outputs import mails, major
from tests.position_scenario import CREDIT, INVOICES, OutputChecks
from tests.staff_helpers import add_staff, csrf, login
from tests.stripe_standin import StripeStandIn
from tests.webhook_helpers import make_app

WEBHOOK_SECRET = "whsec_property_0123456789abcdef"
TODAY = datetime.now(UTC).date()
ENV = {"PORTAL_REMINDER_DAYS_OVERDUE": "1", "PORTAL_REMINDER_DAYS_BEFORE_DUE": "3650",
       "PORTAL_REMINDER_UNOPENED_DAYS": "0", "PORTAL_REMINDER_INTERVAL_DAYS": "0",
       "PORTAL_REMINDER_ESCALATE_AFTER": "0", "PORTAL_DIGEST_UNOPENED_DAYS": "0", "PORTAL_DIGEST_MIN_AMOUNT": "0"}
_names = itertools.count(1)


class World(OutputChecks):
    """One fresh product (database, site folder, webhook app, staff session) and its model."""

    def __init__(self, request, db_kind: str, standin: StripeStandIn):
        self.standin = standin
        self.tmp = Path(tempfile.mkdtemp(prefix="position-"))
        if db_kind == "sqlite":
            self.url = f"sqlite:///{self.tmp / 'portal.db'}"
        else:
            self.url = request.getfixturevalue("postgres").create_database(f"prop_{next(_names)}_{time.time_ns()}")
        self.build_dir, self.export = self.tmp / "build", self.tmp / "export"
        self.site = self.tmp / "published"  # what readers get: the nightly publishes it, refreshes update it
        self.settings = make_settings(
            self.url, stripe_secret_key="sk_test_standin", stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_api_base=standin.base, build_dir=str(self.build_dir), target=str(self.tmp / "published"),
            mail_url=f"outbox:{self.tmp / 'outbox'}", ar_inbox="ar@supplier.example", render_pdfs=True)
        self.model = Model({iid: Item(n, a, a) for iid, (n, a, _) in INVOICES.items()},
                           {CREDIT[0]: Item(CREDIT[1], CREDIT[2], CREDIT[2])})
        self.started: list[datetime] = []  # when each step began (an as_of between steps)
        self.stack = ExitStack()
        self._clock = int(time.time())  # the `created` of the next Stripe event
        self._chargebacks: dict[str, int] = {}  # attempt -> how many chargebacks were opened on it

    def __enter__(self) -> World:
        self.store = Store(self.url)
        self.store.migrate()
        self.stack.callback(self.store.close)
        self._import(datetime.now(UTC))
        self.app = self.stack.enter_context(make_app(self.settings, self.tmp, site_dir=self.build_dir))
        self.client = self.app.test_client()
        add_staff(self.store, "admin@supplier.example", "admin")
        self.staff = self.app.test_client()
        assert login(self.staff, "admin@supplier.example").status_code == 302
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- driving the product ------------------------------------------------------------------------------------

    def _import(self, as_of: datetime) -> None:
        self.export.mkdir(exist_ok=True)
        inv_rows = ["invoice_id,customer_id,number,issue_date,due_date,amount,balance"]
        for iid, (number, amount, due) in INVOICES.items():
            item = self.model.invoices[iid]
            if item.in_export:
                issue = TODAY + timedelta(days=due - 30)
                inv_rows.append(f"{iid},C1,{number},{issue},{TODAY + timedelta(days=due)},{major(amount)},"
                                f"{major(item.balance)}")
        credit = self.model.credits[CREDIT[0]]
        files = {
            "customers.csv": ["customer_id,name,currency,locale,collector",
                              "C1,Acme Inc.,USD,en_US,cara@supplier.example"],
            "contacts.csv": ["customer_id,contact_id,email,name,role", "C1,k1,ap@acme.example,Ann,billing"],
            "invoices.csv": inv_rows,
            "credits.csv": ["credit_id,customer_id,number,issue_date,amount,balance",
                            f"{CREDIT[0]},C1,{CREDIT[1]},{TODAY - timedelta(days=5)},{major(credit.amount)},"
                            f"{major(credit.balance)}"],
        }
        for name, lines in files.items():
            (self.export / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        (self.export / "export.json").write_text(json.dumps({"as_of": as_of.isoformat().replace("+00:00", "Z")}))
        build(self.export, self.build_dir, self.settings, self.store, workers=1)
        publish(self.settings, self.build_dir)  # as the nightly job does, refreshes running or queued meanwhile

    def _settle(self) -> None:
        self.app.extensions["jobs"].wait()

    def apply(self, step: tuple) -> bool:
        """Run one step; False when it does not apply (nothing happened, nothing to check)."""
        m = self.model
        time.sleep(0.002)  # steps never share a timestamp: "after as_of" must be decidable
        m.step += 1
        self.started.append(datetime.now(UTC))
        shutil.rmtree(self.tmp / "outbox", ignore_errors=True)
        kind = step[0]
        if kind == "import":
            _, back, balances, credit_quarters = step
            back = min(back, len(self.started) - 1)
            m.as_of_step = m.step - back
            for iid, (in_export, quarters) in zip(sorted(INVOICES), balances, strict=True):
                item = m.invoices[iid]
                item.in_export, item.balance = in_export, item.amount * quarters // 4
            credit = m.credits[CREDIT[0]]
            credit.balance = credit.amount * credit_quarters // 4
            self._import(self.started[-1 - back])
            return True
        if kind == "pay":
            return self._pay(*step[1:])
        if kind == "event":
            return self._event(*step[1:])
        if kind == "dispute":
            return self._dispute(*step[1:])
        return self._resolve(step[1])

    def _pay(self, chosen: set[str], method: str, part: int | None, use_credit: bool, complete: bool) -> bool:
        m = self.model
        ids = sorted(chosen)
        amounts = {iid: (m.due(iid) * part // 3 if part else m.due(iid)) for iid in ids}
        if any(m.invoices[i].in_export and 0 < m.due(i) and amounts[i] < 100 for i in ids):
            return False  # a part too small to be worth a payment: not tried
        typed = {iid: amounts[iid] for iid in ids if part or m.held(iid)}
        ok = all(m.invoices[i].in_export and m.due(i) > 0 for i in ids) and (
            not use_credit or m.available(CREDIT[0]) > 0)
        return self.pay(ids, method, typed, use_credit, complete, ok) is not None

    def pay(self, ids: list[str], method: str, typed: dict[str, int], use_credit: bool = False,
            complete: bool = True, ok: bool = True) -> str | None:
        """POST /pay for `ids` (amounts in `typed`, else what each owes), expecting it `ok` (else refused); then,
        with `complete`, the attempt's first event. Returns the attempt id (None when refused)."""
        m = self.model
        form = {"page_token": Signer(self.settings).page_token("page", "C1", 1), "invoice": ids, "method": method,
                **{f"amount-{i}": major(a) for i, a in typed.items()}}
        if use_credit:
            form["credit"] = CREDIT[0]
        response = self.client.post("/pay", data=form)
        assert response.status_code == (303 if ok else 400), (ids, typed, response.get_data(as_text=True)[:300])
        if response.status_code != 303:
            return None
        session = self.standin.creates()[-1]
        attempt_id = session.param("client_reference_id")
        amounts = {i: typed.get(i, m.due(i)) for i in ids}
        subtotal = sum(amounts.values())
        credit_used = min(m.available(CREDIT[0]), max(0, subtotal - 50)) if use_credit else 0
        # Stripe's page asks for what the invoices owe (or the parts typed), less the credit: never more.
        charged = sum(int(v) for k, v in session.params if k.endswith("[price_data][unit_amount]"))
        assert charged == subtotal - credit_used, (ids, typed, charged, subtotal, credit_used)
        m.attempts[attempt_id] = Attempt(attempt_id, method, [(i, amounts[i]) for i in ids],
                                         [(CREDIT[0], credit_used)] if credit_used else [], subtotal,
                                         subtotal - credit_used)
        if complete:
            self._event_for(attempt_id, "complete")
        return attempt_id

    def _event(self, index: int, what: str) -> bool:
        if not self.model.attempts:
            return False
        attempt_id = list(self.model.attempts)[index % len(self.model.attempts)]  # in the order they were made
        return self._event_for(attempt_id, what)

    def event(self, attempt_id: str, what: str) -> None:
        """Send the Stripe event `what` (see _event_for) for an attempt; it must apply."""
        assert self._event_for(attempt_id, what), (attempt_id, what, self.model.attempts[attempt_id].status)

    def _chargeback(self, attempt_id: str, opened: bool = False) -> int:
        """The number of the attempt's current chargeback (a new one when `opened`): each is its own object."""
        if opened:
            self._chargebacks[attempt_id] = self._chargebacks.get(attempt_id, 0) + 1
        return self._chargebacks[attempt_id]

    def _event_for(self, attempt_id: str, what: str) -> bool:
        """Send what Stripe sends for `what` (objects from the strict stand-in); False when it cannot happen now."""
        a = self.model.attempts[attempt_id]
        s = self.standin
        session = s.session_for(attempt_id)
        refunded = None
        events: list[tuple[str, dict]] = []
        if what == "complete" and a.status == "created":
            if a.method == "card":
                events = [("checkout.session.completed", s.session_object(session, payment_status="paid"))]
                new = "succeeded"
            else:  # ACH: the customer authorised a debit; Stripe then says the PaymentIntent is processing
                events = [("checkout.session.completed", s.session_object(session, payment_status="unpaid")),
                          ("payment_intent.processing", s.intent(session, "processing"))]
                new = "processing"
        elif what == "settle" and a.status == "processing":
            events = [("checkout.session.async_payment_succeeded", s.session_object(session, payment_status="paid"))]
            new = "succeeded"
        elif what == "fail" and a.status == "processing":
            events = [("payment_intent.payment_failed",
                       s.intent(session, "requires_payment_method", error_code="insufficient_funds"))]
            new = "failed"
        elif what == "expire" and a.status == "created":
            events = [("checkout.session.expired", s.session_object(session, status="expired"))]
            new = "expired"
        elif what in ("refund_part", "refund_full") and a.status in ("succeeded", "partially_refunded", "reinstated"):
            left = a.amount - a.refunded
            refunded = a.amount if what == "refund_full" or left < 2 else a.refunded + left // 2
            events = [("charge.refunded", s.charge(session, refunded=refunded))]
            new = "refunded" if refunded >= a.amount else "partially_refunded"
        elif what == "chargeback" and a.status in ("succeeded", "partially_refunded", "reinstated"):
            number = self._chargeback(attempt_id, opened=True)
            events = [("charge.dispute.created", s.dispute(session, "needs_response", number=number))]
            new = "disputed"
        elif what == "chargeback_won" and a.status == "disputed":
            events = [("charge.dispute.closed", s.dispute(session, "won", number=self._chargeback(attempt_id)))]
            # A won dispute pays again what the charge still holds: a partial refund stays one.
            new = "partially_refunded" if a.refunded else "reinstated"
        else:
            return False
        for kind, obj in events:
            self._clock += 1  # Stripe's `created` orders the snapshots of one object: each event is newer
            payload = json.dumps(s.event(kind, obj, event_id=f"evt_{attempt_id}_{self.model.step}_{what}_{kind}",
                                         created=self._clock))
            signature = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET,
                                                                          timestamp=int(time.time()))
            response = self.client.post("/stripe/events", data=payload,
                                        headers={"Stripe-Signature": signature, "Content-Type": "application/json"})
            assert response.status_code == 200, response.get_data(as_text=True)
        self.model.move(attempt_id, new, refunded)
        self._settle()
        return True

    def dispute(self, invoice_id: str, amount: int | None = None) -> None:
        """POST /dispute for one invoice (`amount`, else all it owes); it must be accepted."""
        assert self._dispute(invoice_id, None, amount)

    def mail_text(self, *command: str) -> str:
        """The text of the one message `portal <command>` sends ("" when it sends none)."""
        folder = f"mail-{next(_names)}"
        self.cli(*command, mail=folder)
        found = mails(self.tmp / folder)
        assert len(found) <= 1, [subject for subject, _, _ in found]
        return found[0][2] if found else ""

    def _dispute(self, invoice_id: str, part: int | None, exact: int | None = None) -> bool:
        m = self.model
        amount = exact if exact is not None else m.due(invoice_id) * part // 3 if part else m.due(invoice_id)
        if part and 0 < m.due(invoice_id) and amount <= 0:
            return False
        form = {"page_token": Signer(self.settings).page_token("page", "C1", 1), "dispute_invoice": [invoice_id],
                "reason": "pricing", "message": "The unit price is not the one agreed.",
                f"dispute_amount-{invoice_id}": major(amount) if part or exact is not None else ""}
        response = self.client.post("/dispute", data=form)
        ok = m.invoices[invoice_id].in_export and m.due(invoice_id) > 0
        assert response.status_code == (200 if ok else 400), response.get_data(as_text=True)[:400]
        self._settle()
        if ok:
            m.disputes[max(m.disputes, default=0) + 1] = (invoice_id, amount, False)
        return ok

    def _resolve(self, index: int) -> bool:
        m = self.model
        unresolved = [d for d, (_, _, done) in sorted(m.disputes.items()) if not done]
        if not unresolved:
            return False
        dispute_id = unresolved[index % len(unresolved)]
        response = self.staff.post(f"/staff/disputes/{dispute_id}/resolve",
                                   data={"outcome": "rejected", "note": "The price is the contract price.",
                                         "csrf_token": csrf(self.staff)})
        assert response.status_code == 302, response.get_data(as_text=True)[:400]
        invoice_id, amount, _ = m.disputes[dispute_id]
        m.disputes[dispute_id] = (invoice_id, amount, True)
        self._settle()
        return True

    def cli(self, *args: str, mail: str = "") -> str:
        env = {"PORTAL_DATABASE_URL": self.url, "PORTAL_SECRET_KEY": TEST_SECRET, **ENV,
               "PORTAL_MAIL_URL": f"outbox:{self.tmp / mail}" if mail else f"outbox:{self.tmp / 'cli-outbox'}"}
        result = CliRunner().invoke(cli, list(args), obj={}, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output
