"""The collector's workbench: touches (calls, emails sent outside the portal, notes, and the portal's own
emails), holds, and who may see and do what (docs/collect.md). The tables are in portal/store/collect.py."""
