"""Traces across HTTP and Kafka: an API request continues its caller's trace, the events it writes
carry that trace in their envelope, and the relay and the consumers that apply them continue it."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.onboarding.adapters.orm import OutboxMessage as OnboardingOutbox
from services.payments.adapters.orm import InboxMessage, Payee
from services.payments.service_layer.projections import HANDLERS as PAYMENTS_HANDLERS
from shared import tracing
from shared.config import ServiceConfig
from shared.events import make_event
from shared.events.consumer import EventConsumer, Outcome, with_set_based_form
from shared.ids import new_id
from shared.partners import PartnerHttpClient
from shared.runtime import make_event_consumer, make_relay
from tests.http_support import CallbackReceiver
from tests.support import Broker, artisan_body, wait_until

REGISTERED = "onboarding.artisan.registered"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER_TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def spans():
    """Tracing on, into memory, for the test; off again after it."""
    exporter = InMemorySpanExporter()
    tracing.start_tracing("test", exporter, batch=False)
    yield exporter
    tracing.stop_tracing()


def finished(exporter, name: str, kind: SpanKind | None = None) -> list:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.name == name and (kind is None or span.kind == kind)
    ]


def trace_of(span) -> str:
    return f"{span.context.trace_id:032x}"


def span_id(span) -> str:
    return f"{span.context.span_id:016x}"


def traceparent(span) -> str:
    return f"00-{trace_of(span)}-{span_id(span)}-{span.context.trace_flags:02x}"


def register(onboarding, marketplace_headers, traceparent: str | None = None) -> str:
    headers = marketplace_headers(str(uuid.uuid4()))
    if traceparent is not None:
        headers["traceparent"] = traceparent
    response = onboarding.post("/v1/artisans", json=artisan_body(), headers=headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def outbox_envelope(context, artisan_id: str) -> dict:
    with context.session_factory() as session:
        payload = session.scalar(
            sa.select(OnboardingOutbox.payload).where(
                OnboardingOutbox.event_type == REGISTERED, OnboardingOutbox.key == artisan_id
            )
        )
    return json.loads(payload)


def registered_event():
    artisan_id = new_id("art")
    return make_event(
        REGISTERED,
        subject=artisan_id,
        data={
            "artisan_id": artisan_id,
            "marketplace_id": "cli_x",
            "kyc_tier": 0,
            "tier_cap": {"amount": 0, "currency": "MAD"},
            "region": "souss_massa",
            "craft": "carpets",
            "registered_at": "2026-11-23T10:00:00+00:00",
        },
    )


def payments_consumer(context, handler) -> EventConsumer:
    return EventConsumer(
        name="hirfa-payments",
        handlers={REGISTERED: handler},
        uow_factory=context.uow_factory,
        inbox_model=InboxMessage,
        consumer_factory=lambda: None,
        producer_factory=lambda: None,
        dead_letter_topic="payments.dead-letter",
    )


# -- HTTP ------------------------------------------------------------------------------------


def test_a_request_with_a_traceparent_is_a_server_span_in_the_callers_trace(
    onboarding, marketplace_headers, spans
):
    register(onboarding, marketplace_headers, CALLER_TRACEPARENT)

    [server] = finished(spans, "POST /v1/artisans", SpanKind.SERVER)
    assert trace_of(server) == CALLER_TRACE
    assert f"{server.parent.span_id:016x}" == CALLER_SPAN and server.parent.is_remote
    assert server.attributes["http.route"] == "/v1/artisans"
    assert server.attributes["http.response.status_code"] == 201
    assert server.resource.attributes["service.name"] == "test"


def test_a_request_without_one_starts_its_own_trace_and_a_client_error_is_not_ours(
    onboarding, marketplace_headers, spans
):
    register(onboarding, marketplace_headers)
    [server] = finished(spans, "POST /v1/artisans", SpanKind.SERVER)
    assert server.parent is None and trace_of(server) != CALLER_TRACE
    assert server.status.status_code is StatusCode.UNSET

    onboarding.get("/healthz", headers={"traceparent": CALLER_TRACEPARENT})  # probes: not traced
    onboarding.get("/v1/no-such-thing", headers={"traceparent": "not-a-traceparent"})
    [unmatched] = finished(spans, "GET", SpanKind.SERVER)
    assert unmatched.parent is None  # a malformed traceparent is ignored, not an error
    assert unmatched.attributes["http.response.status_code"] == 404
    assert "http.route" not in unmatched.attributes
    assert unmatched.status.status_code is StatusCode.UNSET  # the caller's mistake, not ours


def test_a_call_to_a_partner_carries_the_trace_and_is_a_client_span(spans):
    receiver = CallbackReceiver(path="/v1/transfers")
    receiver.start()
    try:
        client = PartnerHttpClient(receiver.url.removesuffix("/v1/transfers"), api_key="k", timeout=5)
        with tracing.tracer().start_as_current_span("caller") as caller:
            client.call("POST", "/v1/transfers", {"amount": 100}, idempotent=True, raw=True)
        [delivery] = receiver.wait_for(1)
    finally:
        receiver.stop()

    [call] = finished(spans, "POST", SpanKind.CLIENT)
    assert call.parent.span_id == caller.get_span_context().span_id
    assert delivery.headers["traceparent"] == traceparent(call)
    assert call.attributes["server.address"] == "127.0.0.1"
    assert call.attributes["http.response.status_code"] == 200


def test_with_tracing_off_nothing_is_sent_or_written(onboarding_app, onboarding, marketplace_headers):
    receiver = CallbackReceiver(path="/v1/transfers")
    receiver.start()
    try:
        client = PartnerHttpClient(receiver.url.removesuffix("/v1/transfers"), api_key="k", timeout=5)
        client.call("POST", "/v1/transfers", {"amount": 100}, idempotent=True, raw=True)
        [delivery] = receiver.wait_for(1)
    finally:
        receiver.stop()
    assert "traceparent" not in {name.lower() for name in delivery.headers}

    artisan_id = register(onboarding, marketplace_headers, CALLER_TRACEPARENT)
    assert "traceparent" not in outbox_envelope(onboarding_app.extensions["hirfa"], artisan_id)


# -- the outbox and the consumers ---------------------------------------------------------------


def test_an_event_written_during_a_request_carries_its_trace_and_a_consumer_continues_it(
    onboarding_app, onboarding, payments_app, marketplace_headers, spans
):
    artisan_id = register(onboarding, marketplace_headers, CALLER_TRACEPARENT)
    envelope = outbox_envelope(onboarding_app.extensions["hirfa"], artisan_id)

    [server] = finished(spans, "POST /v1/artisans", SpanKind.SERVER)
    [created] = finished(spans, f"create {REGISTERED}", SpanKind.PRODUCER)
    assert created.parent.span_id == server.context.span_id
    assert envelope["traceparent"] == traceparent(created)
    assert trace_of(created) == CALLER_TRACE
    assert created.attributes["messaging.message.id"] == envelope["id"]

    consumer = payments_consumer(payments_app.extensions["hirfa"], PAYMENTS_HANDLERS[REGISTERED])
    assert consumer.apply(consumer.decode(json.dumps(envelope).encode(), artisan_id.encode()))

    [processed] = finished(spans, f"process {REGISTERED}", SpanKind.CONSUMER)
    assert trace_of(processed) == CALLER_TRACE
    assert processed.parent.span_id == created.context.span_id
    assert processed.attributes["messaging.consumer.group.name"] == "hirfa-payments"
    assert processed.status.status_code is StatusCode.UNSET


def test_an_event_whose_traceparent_is_malformed_is_still_applied_in_a_trace_of_its_own(
    onboarding_app, onboarding, payments_app, marketplace_headers, spans
):
    artisan_id = register(onboarding, marketplace_headers, CALLER_TRACEPARENT)
    envelope = outbox_envelope(onboarding_app.extensions["hirfa"], artisan_id)
    envelope["traceparent"] = "00-not-a-trace-01"
    payments = payments_app.extensions["hirfa"]
    consumer = payments_consumer(payments, PAYMENTS_HANDLERS[REGISTERED])

    event = consumer.decode(json.dumps(envelope).encode(), artisan_id.encode())
    assert event.traceparent is None
    assert consumer.apply(event)

    with payments.session_factory() as session:
        assert session.get(Payee, artisan_id) is not None
    [processed] = finished(spans, f"process {REGISTERED}", SpanKind.CONSUMER)
    assert processed.parent is None and trace_of(processed) != CALLER_TRACE


def test_a_failing_handler_marks_its_span_failed_without_the_message(payments_app, spans):
    def explode(uow, event):
        raise RuntimeError("artisan +212612345678 is unknown")

    consumer = payments_consumer(payments_app.extensions["hirfa"], explode)
    event = dataclasses.replace(registered_event(), traceparent=CALLER_TRACEPARENT)
    [result] = consumer.apply_batch([event])
    assert result.outcome is Outcome.FAILED

    [processed] = finished(spans, f"process {REGISTERED}", SpanKind.CONSUMER)
    assert trace_of(processed) == CALLER_TRACE
    assert processed.status.status_code is StatusCode.ERROR
    assert processed.attributes["error.type"] == "RuntimeError"
    assert "212612345678" not in str(processed.to_json())


def test_events_applied_together_are_one_span_linked_to_each_and_a_part_in_each_trace(payments_app, spans):
    traces = [f"{index:032x}" for index in range(1, 4)]
    events = [
        dataclasses.replace(registered_event(), traceparent=f"00-{trace}-{index + 1:016x}-01")
        for index, trace in enumerate(traces)
    ]
    events.append(registered_event())  # one with no trace: linked to nothing, no part of its own
    applied_together: list[int] = []

    def apply_many(uow, batch):
        applied_together.append(len(batch))
        for event in batch:
            PAYMENTS_HANDLERS[REGISTERED](uow, event)

    handler = with_set_based_form(PAYMENTS_HANDLERS[REGISTERED], apply_many)
    consumer = payments_consumer(payments_app.extensions["hirfa"], handler)
    assert [result.outcome for result in consumer.apply_batch(events)] == [Outcome.APPLIED] * 4
    assert applied_together == [4]

    spans_named = finished(spans, f"process {REGISTERED}", SpanKind.CONSUMER)
    [batch] = [span for span in spans_named if "messaging.batch.message_count" in span.attributes]
    assert batch.attributes["messaging.batch.message_count"] == 4
    assert batch.attributes["hirfa.applied_together"] is True
    assert batch.parent is None and trace_of(batch) not in traces
    assert [f"{link.context.trace_id:032x}" for link in batch.links] == traces

    parts = [span for span in spans_named if span is not batch]
    assert sorted(trace_of(part) for part in parts) == traces
    for part in parts:
        assert [link.context.span_id for link in part.links] == [batch.context.span_id]
        assert (part.start_time, part.end_time) == (batch.start_time, batch.end_time)


# -- through the broker ---------------------------------------------------------------------------


@pytest.fixture
def fresh_broker(tmp_path):
    broker = Broker(tmp_path / "broker.log")
    broker.start()
    yield broker
    broker.stop()


def test_one_trace_from_the_request_through_the_relay_to_the_consumer(
    fresh_broker, onboarding_app, onboarding, payments_app, marketplace_headers, spans
):
    contexts = []
    for app in (onboarding_app, payments_app):
        context = app.extensions["hirfa"]
        context.config = dataclasses.replace(
            context.config,
            kafka_bootstrap_servers=fresh_broker.bootstrap,
            consumer_session_timeout_ms=6000,
            relay_poll_interval_seconds=0.05,
        )
        contexts.append(context)
    onboarding_ctx, payments_ctx = contexts

    artisan_id = register(onboarding, marketplace_headers, CALLER_TRACEPARENT)
    stop = threading.Event()
    # Run as their processes run them: each loop closes its Kafka clients when it stops.
    loops = [
        make_relay(onboarding_ctx).run,
        make_event_consumer(payments_ctx, PAYMENTS_HANDLERS, ["onboarding.events"], stop=stop).run,
    ]
    threads = [threading.Thread(target=loop, args=(stop,), daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: finished(spans, f"process {REGISTERED}"), message="the consumer's span")
    finally:
        stop.set()
        for thread in threads:
            thread.join(20)

    [server] = finished(spans, "POST /v1/artisans", SpanKind.SERVER)
    [created] = finished(spans, f"create {REGISTERED}", SpanKind.PRODUCER)
    [sent] = finished(spans, f"send {REGISTERED}", SpanKind.PRODUCER)
    [processed] = finished(spans, f"process {REGISTERED}", SpanKind.CONSUMER)
    assert {trace_of(span) for span in (server, created, sent, processed)} == {CALLER_TRACE}
    assert created.parent.span_id == server.context.span_id
    assert sent.parent.span_id == created.context.span_id
    assert sent.attributes["messaging.destination.name"] == "onboarding.events"
    assert sent.status.status_code is StatusCode.UNSET
    assert processed.parent.span_id == created.context.span_id
    with payments_ctx.session_factory() as session:
        assert session.get(Payee, artisan_id) is not None


def test_spans_leave_for_the_collector_over_otlp_http_with_its_headers():
    collector = CallbackReceiver(path="/v1/traces")
    collector.start()
    try:
        config = ServiceConfig.from_env(
            "payments",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url.removesuffix("/v1/traces"),
                "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=collector-key",
            },
        )
        assert tracing.configure_tracing("payments-api", config)
        tracing.tracer().start_span("a span").end()
        tracing.stop_tracing()  # sends what is left
        [export] = collector.wait_for(1)
    finally:
        tracing.stop_tracing()
        collector.stop()
    headers = {name.lower(): value for name, value in export.headers.items()}
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-api-key"] == "collector-key"
    assert b"payments-api" in export.body and b"a span" in export.body
