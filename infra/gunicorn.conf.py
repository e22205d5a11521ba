"""gunicorn settings for the webhook container (`gunicorn --config infra/gunicorn.conf.py "webhook:create_app()"`).

Every value can be changed from the environment (GUNICORN_*, or PORT for the bind address), so one image
fits ECS, App Runner and a plain VM. Settings of the portal itself come from PORTAL_* variables as usual.
"""

from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
# Requests are short and mostly wait on the database: a few sync workers per core, threads for the waits.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# create_app opens no database connection, so the app can be loaded once before forking (less memory, and a
# broken configuration fails the master at start instead of every worker).
preload_app = True
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20  # ECS sends SIGTERM and waits 30 s by default before SIGKILL
# Longer than a load balancer's idle timeout (ALB: 60 s), or it may reuse a connection gunicorn just closed.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
# Recycle workers now and then (memory held by long-lived pools), jittered so they do not all restart at once.
max_requests = 10000
max_requests_jitter = 1000
# The webhook trusts X-Forwarded-* only through its own PROXY_FIX setting; gunicorn itself trusts none.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# No access log: its request line holds the tokens of /l/, /r/, /d/ paths. The app logs every request itself,
# redacted (webhook/logs.py).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Small request lines and headers: the routes take tiny forms (the app refuses bodies over 64 KB too).
limit_request_line = 4094
limit_request_fields = 100
