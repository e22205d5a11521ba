"""Work that follows an event, off the request: re-render and publish one customer (republish.py), the disputes'
staff actions with their re-render (disputes.py).
"""
