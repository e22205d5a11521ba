"""The /staff dashboard: login and sessions (auth.py), the blueprint and what its views share, the overview, the
tables and CSV exports. Every form has CSRF and a role check (docs/staff.md).
"""
