"""Paying invoices online (Stripe Checkout); nothing here knows Flask or calls Stripe's API.

- start: what a customer may pay of what they chose (their open invoices, less what disputes hold) and the attempt
  recorded before Stripe is called; the one function /pay calls.
- pricing: the methods and `quote` (discount, fee, credits, Stripe's minimum), pure.
- checkout: the Checkout Session asked of Stripe for a quote; stripe_amounts: Stripe's minimums and units.
- state: Stripe's events read into snapshots, and the attempt's status derived from them (any order).
- events: an event applied once, in one transaction; allocations: a payment applied to its invoices when it
  first counts; messages: the payer's emails.
See docs/payments.md.
"""
