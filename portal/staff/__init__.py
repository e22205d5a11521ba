"""The AR staff side of the product: users and roles, the overview KPIs, the paginated tables and their CSV
exports, the reports behind `portal report`, the receipt rollup and ready-made receipt lines, the collectors'
daily digest, charts (docs/staff.md).
"""
