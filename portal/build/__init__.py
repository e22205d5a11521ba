"""The nightly build: import the export into the store, then render each customer's pages and PDFs (in parallel)
into a folder with its manifest. Re-rendering one customer after an event is portal/jobs.
"""
