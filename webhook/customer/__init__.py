"""The customer's routes: the emailed link and read receipts, documents, /pay and Stripe's events, disputes and
questions, unsubscribing. Each view parses the request, calls one portal function, renders (docs/webhook.md).
"""
