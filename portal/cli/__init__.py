"""The `portal` command: the click group and its context (group.py), one module per command group. Errors become
messages and exit codes in one place (group.PortalGroup). `portal serve` is the webhook's (webhook/devserver.py).
"""
