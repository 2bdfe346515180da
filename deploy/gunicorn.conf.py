"""Gunicorn settings for every Hirfa service; values come from the environment.

One process per container with threads (gthread) is the default: scale with replicas behind the
load balancer, which keeps Prometheus metrics per process simple.
"""

import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
keepalive = 5
# Access lines come from the app's structured request log (with request ids); gunicorn's own
# access log would duplicate them without masking.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Cap request line and headers: nothing legitimate comes close.
limit_request_line = 8190
limit_request_fields = 100
# Several services share a host in development: gunicorn's control socket would collide.
control_socket_disable = True
