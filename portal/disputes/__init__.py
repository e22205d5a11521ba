"""Disputes and questions from customers: what may be disputed, recording them, their private attachments, and
the staff lifecycle (review, resolve). Re-rendering pages afterwards is the caller's (portal/jobs/disputes.py).
"""
