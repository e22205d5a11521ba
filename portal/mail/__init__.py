"""Email: the transport chosen by `mail_url` (transport.py), what each email says (messages.py), the delivery
send, remind and the digest share (delivery.py), invoice emails (sending.py), reminders (docs/email.md).
"""
