"""What each invoice owes: THE rule (rule.py, no database), the journal of payment movements (journal.py), the
stored positions every SQL reader uses (stored.py), their readers (position.py), and the statement of account.
Every page, PDF, email, report and export reads these; nothing computes its own (docs/balances.md).
"""
