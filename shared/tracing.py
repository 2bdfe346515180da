"""Traces (OpenTelemetry): a span per API request, continued through the partners and services it
calls, the events it writes to the outbox, the relay that publishes them and the consumers that
apply them.

Off unless a process's settings name an exporter (``OTEL_TRACES_EXPORTER``: ``otlp``, ``console``)
or give an OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``). Off, ``tracer()`` is None and the
callers skip everything else: the hot paths (payments' POST, the ledger's postings) pay one
function call per request or event and allocate nothing for tracing.

The context crosses HTTP in the W3C ``traceparent`` header, and Kafka in the event envelope's
optional ``traceparent`` (declared in shared/events/schemas/envelope.json). It is written into the
envelope when the event enters the outbox, so an event published late, replayed or redriven still
belongs to the trace it was created in.

OpenTelemetry's global tracer provider can be set once per process only; the provider is kept
here instead, so tests can switch tracing on and off.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from shared.config import ServiceConfig
    from shared.events.envelope import Event

TRACEPARENT = "traceparent"
# Where an OTLP/HTTP receiver takes spans, under the endpoint's base URL (as OpenTelemetry's own
# OTEL_EXPORTER_OTLP_ENDPOINT is read).
OTLP_TRACES_PATH = "/v1/traces"

_propagator = TraceContextTextMapPropagator()
_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def tracer() -> Tracer | None:
    """The process's tracer; None while tracing is off (the callers then do nothing at all)."""
    return _tracer


def exporter_name(config: ServiceConfig) -> str:
    """The exporter the settings ask for: ``otlp``, ``console`` or ``none`` (unset: ``otlp`` with an
    endpoint, else ``none``)."""
    chosen = config.otel_traces_exporter.strip().lower()
    if chosen:
        return chosen
    return "otlp" if config.otel_exporter_otlp_endpoint else "none"


def configure_tracing(process: str, config: ServiceConfig) -> bool:
    """Start tracing for ``process`` (``payments-api``, ``accounts-consumer``…) when the settings
    ask for it; whether they did. Off, whatever tracing was started before is left as it is."""
    name = exporter_name(config)
    if name == "none":
        return False
    exporter: SpanExporter
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # Each span as it ends, on stderr beside the logs (development).
        exporter = ConsoleSpanExporter(service_name=process, out=sys.stderr)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(
            endpoint=config.otel_exporter_otlp_endpoint.rstrip("/") + OTLP_TRACES_PATH,
            headers=parse_headers(config.otel_exporter_otlp_headers) or None,
        )
    start_tracing(
        process,
        exporter,
        environment=config.environment,
        sample_ratio=config.otel_traces_sampler_arg,
        batch=name == "otlp",
    )
    return True


def start_tracing(
    process: str,
    exporter: SpanExporter,
    *,
    environment: str = "development",
    sample_ratio: float = 1.0,
    batch: bool = True,
) -> None:
    """Trace this process as ``process`` into ``exporter`` (replacing any earlier provider).

    New traces are kept with probability ``sample_ratio``; a trace continued from a caller or an
    event keeps the caller's decision. ``batch``: spans leave in batches from a thread of their
    own (an exporter that waits on the network); otherwise each as it ends."""
    global _tracer, _provider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create(
        {
            "service.name": process,
            "service.namespace": "hirfa",
            "deployment.environment.name": environment,
        }
    )
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(sample_ratio)))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    stop_tracing()
    _provider = provider
    _tracer = provider.get_tracer("hirfa")


def stop_tracing() -> None:
    """Send what is left and stop tracing (no-op when it is off)."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def parse_headers(raw: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS``: ``name=value,…``, values URL-encoded (OpenTelemetry's format)."""
    headers: dict[str, str] = {}
    for item in raw.split(","):
        name, equals, value = item.partition("=")
        if equals and name.strip():
            headers[unquote(name.strip()).lower()] = unquote(value.strip())
    return headers


def traceparent_of(span: Span) -> str | None:
    """``span``'s context in the W3C ``traceparent`` format; None for an invalid one."""
    found = span.get_span_context()
    if not found.is_valid:
        return None
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{found.trace_flags:02x}"


def current_trace_id() -> str | None:
    """The trace of what is current (a request, an event being applied), as hex; None outside one."""
    found = trace.get_current_span().get_span_context()
    return f"{found.trace_id:032x}" if found.is_valid else None


def _remote_context(traceparent: str | None) -> otel_context.Context | None:
    """The context a ``traceparent`` names; None when it is missing or malformed (a new trace)."""
    if not traceparent:
        return None
    found = _propagator.extract({TRACEPARENT: traceparent})
    if not trace.get_current_span(found).get_span_context().is_valid:
        return None
    return found


def _link(traceparent: str | None) -> Link | None:
    found = _remote_context(traceparent)
    return None if found is None else Link(trace.get_current_span(found).get_span_context())


def _failed(span: Span, error: BaseException) -> None:
    # The error's type only: its message and traceback may hold a person's data, which the logs
    # mask (shared/logging.py) but a span would carry to the collector as it is.
    span.set_attribute("error.type", type(error).__qualname__)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


@contextmanager
def _current(
    chosen: Tracer, name: str, parent: otel_context.Context | None, **options: Any
) -> Iterator[Span]:
    """``chosen.start_as_current_span``, recording a failure as ``_failed`` does."""
    with chosen.start_as_current_span(
        name, parent, record_exception=False, set_status_on_exception=False, **options
    ) as span:
        try:
            yield span
        except BaseException as error:
            _failed(span, error)
            raise


# -- HTTP --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _ServerSpan:
    span: Span
    token: Any


# The request's span, from ``start_request`` to ``finish_request`` (as the request id in
# shared/logging.py): a context variable costs nanoseconds to read, Flask's ``g`` microseconds, and
# the APIs look on every request, traced or not.
_server_span: ContextVar[_ServerSpan | None] = ContextVar("server_span", default=None)


class Headers(Protocol):
    """Request headers as the propagator reads them (werkzeug's, a dict)."""

    def get(self, key: str, /) -> str | None: ...


def start_request(chosen: Tracer, method: str, route: str | None, headers: Headers, request_id: str) -> None:
    """The request's server span, continuing the caller's ``traceparent`` when it sent a valid one;
    current until ``finish_request``.

    Only the route (``/v1/payments/<payment_id>``) is recorded, never the path or the query: a
    path may carry a capability (a verification code) and a query a person's data."""
    parent = _propagator.extract(headers)
    attributes: dict[str, Any] = {"http.request.method": method, "hirfa.request_id": request_id}
    if route is not None:
        attributes["http.route"] = route
    span = chosen.start_span(
        f"{method} {route}" if route else method, parent, kind=SpanKind.SERVER, attributes=attributes
    )
    _server_span.set(_ServerSpan(span, otel_context.attach(trace.set_span_in_context(span, parent))))


def request_answered(status_code: int) -> None:
    """The status the request is answered with (nothing while it has no span)."""
    server_span = _server_span.get()
    if server_span is not None:
        answered(server_span.span, status_code)


def answered(span: Span, status_code: int) -> None:
    """The HTTP status an answer came with; a 5xx marks the span failed (a 4xx is the caller's)."""
    span.set_attribute("http.response.status_code", status_code)
    if status_code >= 500:
        span.set_status(Status(StatusCode.ERROR))


def finish_request(error: BaseException | None = None) -> None:
    """End the request's span, if it has one."""
    server_span = _server_span.get()
    if server_span is None:
        return
    _server_span.set(None)
    if error is not None:
        _failed(server_span.span, error)
    server_span.span.end()
    otel_context.detach(server_span.token)


@contextmanager
def calling(chosen: Tracer, method: str, url: str, headers: MutableMapping[str, str]) -> Iterator[Span]:
    """A client span around one outgoing HTTP call, its context sent along in ``headers``.

    The host and port are recorded, not the path or the query (a partner's path may carry a
    reference, a query a phone number)."""
    parts = urlsplit(url)
    attributes: dict[str, Any] = {"http.request.method": method, "server.address": parts.hostname or ""}
    if parts.port is not None:
        attributes["server.port"] = parts.port
    with _current(chosen, method, None, kind=SpanKind.CLIENT, attributes=attributes) as span:
        _propagator.inject(headers)
        yield span


# -- events ------------------------------------------------------------------------------------


def event_created(chosen: Tracer, event: Event, topic: str) -> str | None:
    """A span for ``event`` entering the outbox (a child of what is current: the request, the
    consumed event), and the ``traceparent`` its envelope carries from then on."""
    span = chosen.start_span(
        f"create {event.type}",
        kind=SpanKind.PRODUCER,
        attributes=_event_attributes(event.type, event.id, topic, "create"),
    )
    span.end()
    return traceparent_of(span)


def start_sending(
    chosen: Tracer, event_type: str, event_id: str, topic: str, traceparent: str | None
) -> Span:
    """The relay's span for publishing one event, in the trace the event was created in."""
    return chosen.start_span(
        f"send {event_type}",
        _remote_context(traceparent),
        kind=SpanKind.PRODUCER,
        attributes=_event_attributes(event_type, event_id, topic, "send"),
    )


def finish_sending(spans: Sequence[Span], acknowledged: int, error: str | None) -> None:
    """End the relay's spans: the first ``acknowledged`` were published, the rest failed (``error``)."""
    for index, span in enumerate(spans):
        if index >= acknowledged and error is not None:
            span.set_status(Status(StatusCode.ERROR, error[:200]))
        span.end()


@contextmanager
def processing(chosen: Tracer, event: Event, consumer: str) -> Iterator[Span]:
    """The consumer's span for applying ``event``, a child of the envelope's ``traceparent`` (a new
    trace when it has none); current while the handler runs, so the events it writes continue it."""
    with _current(
        chosen,
        f"process {event.type}",
        _remote_context(event.traceparent),
        kind=SpanKind.CONSUMER,
        attributes={
            **_event_attributes(event.type, event.id, None, "process"),
            "messaging.consumer.group.name": consumer,
        },
    ) as span:
        yield span


def failed(span: Span, error: BaseException) -> None:
    """Mark ``span`` failed with ``error`` (a handler's, caught by its caller)."""
    _failed(span, error)


@dataclasses.dataclass(frozen=True, slots=True)
class BatchSpan:
    """The span of several events applied at once, current until ``finish_processing_together``."""

    tracer: Tracer
    span: Span
    token: Any
    events: Sequence[Event]
    consumer: str
    started_ns: int


def start_processing_together(chosen: Tracer, events: Sequence[Event], consumer: str) -> BatchSpan:
    """One span for ``events`` applied at once (a handler's set-based form). They may come from as
    many traces: the span starts a trace of its own, linked to each event's context."""
    links = [link for link in (_link(event.traceparent) for event in events) if link is not None]
    started_ns = time.time_ns()
    span = chosen.start_span(
        f"process {events[0].type}",
        otel_context.Context(),
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.batch.message_count": len(events),
            "messaging.consumer.group.name": consumer,
            "hirfa.event.type": events[0].type,
        },
        start_time=started_ns,
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    return BatchSpan(chosen, span, token, events, consumer, started_ns)


def finish_processing_together(
    batch: BatchSpan, *, applied: bool, error: BaseException | None = None
) -> None:
    """End the batch's span. When the events were applied, each event's own trace also gets a
    span for its part (the batch's time, linked to the batch's span), so following one payment
    still leads to the consumer that applied it. When they were not (they are then applied one
    at a time, each in a span of its own), only the batch's span is left, saying so."""
    otel_context.detach(batch.token)
    if error is not None:
        _failed(batch.span, error)
    batch.span.set_attribute("hirfa.applied_together", applied)
    finished_ns = time.time_ns()
    batch.span.end(end_time=finished_ns)
    if not applied:
        return
    link = Link(batch.span.get_span_context())
    for event in batch.events:
        parent = _remote_context(event.traceparent)
        if parent is None:
            continue
        part = batch.tracer.start_span(
            f"process {event.type}",
            parent,
            kind=SpanKind.CONSUMER,
            links=[link],
            attributes={
                **_event_attributes(event.type, event.id, None, "process"),
                "messaging.consumer.group.name": batch.consumer,
            },
            start_time=batch.started_ns,
        )
        part.end(end_time=finished_ns)


def _event_attributes(event_type: str, event_id: str, topic: str | None, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.message.id": event_id,
        "hirfa.event.type": event_type,
    }
    if topic is not None:
        attributes["messaging.destination.name"] = topic
    return attributes
