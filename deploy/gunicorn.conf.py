"""Gunicorn settings for every Hirfa service; values come from the environment.

One process per container with threads (gthread) is the default: scale with replicas behind the
load balancer, which keeps Prometheus metrics per process simple.
"""

import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
# gunicorn's threaded worker (gthread), answering the requests gunicorn refuses as problem+json.
worker_class = "shared.gunicorn_worker.ProblemThreadWorker"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
keepalive = 5
# Access lines come from the app's structured request log (with request ids); gunicorn's own
# access log would duplicate them without masking.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Request line and headers: the app's middleware (shared/wsgi_limits.py) refuses with problem+json
# above 4096 bytes of request line, 100 headers, 16 KiB in one header or 32 KiB in all. These
# caps sit above those so the middleware answers first; gunicorn keeps them as a last bound on
# memory (8190 is the most its request line may be), and its worker answers problem+json too.
limit_request_line = 8190
limit_request_fields = 128
limit_request_field_size = 20480
# Several services share a host in development: gunicorn's control socket would collide.
control_socket_disable = True
