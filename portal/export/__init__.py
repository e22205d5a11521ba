"""The AR export from the ERP: its model (model.py), the reader that validates every file and row and reports
`file:line: column: message` (reader.py, csvfiles.py, rows.py), and the sample export for the demo and tests.
"""
