"""The webhook's background jobs: what a route does after its answer (re-render and publish a customer's pages,
send the emails), off the request path and after the route's transaction has committed.

ONE runner per app, `app.extensions["jobs"]` (portal.jobs.republish.Republisher: one worker thread), shared by
every route: a payment event and a dispute for the same customer re-render one after the other, never at once
(renders of the output folder are serialised anyway), and a burst of events queues instead of starting a burst
of renders. A failed job is logged and does not stop the runner; the nightly build heals what it missed.
Tests wait for it with `app.extensions["jobs"].wait()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from email.message import EmailMessage

from flask import Flask, current_app

from portal.jobs.republish import Republisher, refresh_customer
from portal.mail.transport import send_with_retry
from webhook.services import services


def init_app(app: Flask) -> None:
    app.extensions["jobs"] = Republisher()


def jobs() -> Republisher:
    return current_app.extensions["jobs"]


def republish_later(customer_id: str) -> None:
    """Re-render this customer's pages and publish what changed (portal.jobs.republish.refresh_customer)."""
    s = services()
    settings, store = s.settings, s.store
    jobs().submit(lambda: refresh_customer(settings, store, customer_id), f"republish {customer_id}")


def mail_later(messages: Callable[[], Iterable[EmailMessage]], what: str) -> None:
    """Send the messages `messages()` makes (called in the background: it may read the store), each with the
    configured retries."""
    s = services()
    settings, mailer = s.settings, s.mailer

    def send() -> None:
        for message in messages():
            send_with_retry(mailer, message, settings.mail_attempts, settings.mail_retry_delay_ms / 1000)

    jobs().submit(send, what)
