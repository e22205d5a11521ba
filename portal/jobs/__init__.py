"""The work that follows an event, off the request: the job worker (worker.py) that runs what the store's queue
holds (portal/store/jobqueue.py): re-render and publish one customer (refresh.py), send the emails (mailjobs.py).
"""
