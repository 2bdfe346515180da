"""What a process shows of itself to Prometheus and to its orchestrator.

The APIs answer ``/metrics``, ``/healthz`` and ``/readyz`` on their own port (``shared/app.py``).
A relay, a consumer or a worker has no HTTP port, so it serves the same three paths on a small
one of its own (``PROBE_PORT``), from a ``ProbeServer`` thread:

- ``/metrics``: Prometheus text: the process's own collectors (read at scrape time) beside the
  counters and gauges its code keeps (the default registry: consumer lag, dead letters, duties'
  last success, the process's CPU and memory).
- ``/healthz`` (liveness): 200 while every work loop of the process has turned within its
  ``Heartbeat``'s allowance; 503 naming the loops that stalled, which a restart may cure.
- ``/readyz`` (readiness): 200 while the database (and, for a relay or a consumer, the broker)
  answers, the checks ``/readyz`` of the APIs make; 503 otherwise.

The readiness checks and the outbox gauges are defined here once and used by both.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import sqlalchemy as sa
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.context import ServiceContext
from shared.db import utcnow
from shared.events.broker import KafkaCluster, broker_reachable
from shared.events.outbox import outbox_backlog, outbox_oldest_unpublished

log = logging.getLogger(__name__)

ReadyChecks = Mapping[str, Callable[[], bool]]

# A client that connects and says nothing is dropped after this long (it would keep a thread).
PROBE_IDLE_CLIENT_SECONDS = 5.0


# -- readiness ----------------------------------------------------------------------------------


def database_reachable(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    return True


def infrastructure_checks(context: ServiceContext, *, broker: bool = True) -> dict[str, Callable[[], bool]]:
    """What a process of the service needs to do any work: its database and, when it reads or
    writes events, the broker."""
    config = context.config
    checks: dict[str, Callable[[], bool]] = {"database": lambda: database_reachable(context.engine)}
    if broker:
        checks["broker"] = lambda: broker_reachable(KafkaCluster.from_config(config))
    return checks


def readiness(checks: ReadyChecks) -> tuple[bool, dict[str, str]]:
    """Run every check: whether all passed, and each one's ``ok`` or ``unavailable``. A check that
    raises is unavailable, never an error of the probe."""
    results = {}
    for name, check in checks.items():
        try:
            results[name] = "ok" if check() else "unavailable"
        except Exception:  # noqa: BLE001 - a failing check means "not ready", not a 500
            results[name] = "unavailable"
    return all(value == "ok" for value in results.values()), results


# -- liveness -----------------------------------------------------------------------------------


class Heartbeat:
    """When each work loop of a process last turned. A loop that has not turned for
    ``stall_seconds`` is stalled: it hangs on something (a client call that never returns, a lock)
    and only a restart will move it. The loops are named up front, so one that hangs before its
    first turn counts too."""

    def __init__(
        self,
        stall_seconds: float,
        loops: Iterable[str] = ("main",),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        now = clock()
        self._last_turn = dict.fromkeys(loops, now)
        if not self._last_turn:
            raise ValueError("a heartbeat needs at least one loop")

    def beat(self, loop: str = "main") -> None:
        if loop not in self._last_turn:
            raise KeyError(f"unknown loop {loop!r}")
        self._last_turn[loop] = self._clock()

    def beater(self, loop: str) -> Callable[[], None]:
        """``beat`` for one loop, to hand to that loop."""
        if loop not in self._last_turn:
            raise KeyError(f"unknown loop {loop!r}")
        return lambda: self.beat(loop)

    def silent_for(self) -> dict[str, float]:
        """Seconds since each loop last turned."""
        now = self._clock()
        return {loop: now - turned for loop, turned in self._last_turn.items()}

    def stalled(self) -> list[str]:
        return sorted(loop for loop, silent in self.silent_for().items() if silent > self.stall_seconds)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "hirfa_loop_seconds_since_last_turn",
            "Seconds since each work loop of the process last turned (/healthz fails past its allowance)",
            labels=["loop"],
        )
        for loop, silent in sorted(self.silent_for().items()):
            gauge.add_metric([loop], silent)
        yield gauge

    def describe(self) -> list[GaugeMetricFamily]:
        return []


# -- gauges read at scrape time ------------------------------------------------------------------


class OutboxCollector:
    """The service's outbox: how many events are not published yet, and how long the oldest of
    them has waited (0: none). Read from the database at scrape time; a scrape while the database
    is away leaves them out instead of failing."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    def collect(self) -> Iterator[GaugeMetricFamily]:
        model = self.context.models.outbox
        try:
            with self.context.session_factory() as session:
                backlog = outbox_backlog(session, model)
                oldest = outbox_oldest_unpublished(session, model)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is down
            return
        yield GaugeMetricFamily("hirfa_outbox_backlog", "Outbox events not yet published", value=backlog)
        yield GaugeMetricFamily(
            "hirfa_outbox_oldest_unpublished_seconds",
            "How long the oldest outbox event not yet published has waited (0: none)",
            value=seconds_since(oldest),
        )

    def describe(self) -> list[GaugeMetricFamily]:
        return []


def seconds_since(moment: Any) -> float:
    """Seconds from ``moment`` (an aware datetime, or None) to now; 0 for None."""
    return max((utcnow() - moment).total_seconds(), 0.0) if moment is not None else 0.0


class _DefaultRegistryMetrics:
    """The default registry's metrics (module-level counters and gauges, the process and platform
    collectors), served beside a process's own. Describes nothing, so the two never clash over a
    name at registration."""

    def collect(self) -> Iterable[Any]:
        return REGISTRY.collect()

    def describe(self) -> list[Any]:
        return []


def process_registry(collectors: Iterable[Collector] = ()) -> CollectorRegistry:
    """What a process's ``/metrics`` shows: ``collectors`` and the default registry's metrics."""
    registry = CollectorRegistry()
    registry.register(_DefaultRegistryMetrics())
    for collector in collectors:
        registry.register(collector)
    return registry


# -- the server -----------------------------------------------------------------------------------


class _ProbeHTTPServer(ThreadingMixIn, WSGIServer):
    # A request in flight never holds up the process's exit.
    daemon_threads = True
    # A restarted process binds its port again at once, past the previous one's TIME_WAIT.
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """Probes every few seconds would drown the process's log: nothing is logged per request."""

    timeout = PROBE_IDLE_CLIENT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class ProbeServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` (port 0: a free one, see
    ``port``), on a daemon thread. ``start`` binds (an address in use raises ``OSError``);
    ``stop`` returns within about half a second."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry,
        heartbeat: Heartbeat,
        ready_checks: ReadyChecks | None = None,
        process: str = "",
    ) -> None:
        self.host = host
        self.requested_port = port
        self.process = process
        self.heartbeat = heartbeat
        self.ready_checks = dict(ready_checks or {})
        self._metrics_app = make_wsgi_app(registry)
        self._server: _ProbeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the probe server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ProbeServer:
        self._server = make_server(
            self.host,
            self.requested_port,
            self._app,
            server_class=_ProbeHTTPServer,
            handler_class=_QuietHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="probe-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()  # serve_forever notices within its poll interval
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def __enter__(self) -> ProbeServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- the WSGI app ------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _json(start_response, 405, {"status": "method_not_allowed"})
        if path == "/metrics":
            result: Iterable[bytes] = self._metrics_app(environ, start_response)
            return result
        if path == "/healthz":
            stalled = self.heartbeat.stalled()
            if stalled:
                return _json(
                    start_response, 503, {"status": "stalled", "process": self.process, "loops": stalled}
                )
            return _json(start_response, 200, {"status": "ok", "process": self.process})
        if path == "/readyz":
            ready, results = readiness(self.ready_checks)
            body = {"status": "ready" if ready else "not_ready", "process": self.process, "checks": results}
            return _json(start_response, 200 if ready else 503, body)
        return _json(start_response, 404, {"status": "not_found"})


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def _json(start_response: Callable[..., Any], status: int, body: dict[str, Any]) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(
        f"{status} {_REASONS[status]}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
    )
    return [payload]
