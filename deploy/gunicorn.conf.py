"""Gunicorn settings for every Hirfa service; values come from the environment.

One process per container with threads (gthread) is the default: scale with replicas behind the
load balancer. With several worker processes (WEB_CONCURRENCY), /metrics adds up every worker's
counters (prometheus_client's multiprocess mode, below), whichever worker answers the scrape.
"""

import glob
import os
import shutil
import tempfile

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

# Several workers: each one writes its counters and histograms to files in a directory they share,
# and /metrics reads them all (shared/app.py). The variable must be set before a worker imports
# prometheus_client, so here, in the master, before any worker is forked. A directory given in
# PROMETHEUS_MULTIPROC_DIR is used as it is (emptied at start); otherwise one is made under the
# temporary directory (/tmp, an emptyDir on Kubernetes) and removed at exit.
_made_metrics_directory = None
if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _made_metrics_directory = tempfile.mkdtemp(prefix="hirfa-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_metrics_directory


def on_starting(server):
    # What a previous run left would be added to this run's counts.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        for leftover in glob.glob(os.path.join(directory, "*.db")):
            os.remove(leftover)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _made_metrics_directory:
        shutil.rmtree(_made_metrics_directory, ignore_errors=True)
