"""Tracing's settings, the envelope's optional trace context, and what the consumer makes of it."""

from __future__ import annotations

import json

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from shared import tracing
from shared.config import ConfigError, ServiceConfig
from shared.events import EventSchemaError, make_event, validate_event
from shared.events.consumer import EventConsumer, PoisonMessage
from shared.events.envelope import Event
from shared.ids import new_id

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def tracing_off_after():
    yield
    tracing.stop_tracing()


def registered_event() -> Event:
    artisan_id = new_id("art")
    return make_event(
        "onboarding.artisan.registered",
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


def decoder() -> EventConsumer:
    return EventConsumer(
        name="test",
        handlers={},
        uow_factory=lambda: None,
        inbox_model=None,
        consumer_factory=lambda: None,
        producer_factory=lambda: None,
        dead_letter_topic="test.dead-letter",
    )


class TestSettings:
    def test_off_by_default(self):
        config = ServiceConfig.from_env("payments", {})
        assert tracing.exporter_name(config) == "none"
        assert tracing.configure_tracing("payments-api", config) is False
        assert tracing.tracer() is None

    def test_an_otlp_endpoint_turns_otlp_export_on_under_the_process_name(self, monkeypatch):
        started = {}
        monkeypatch.setattr(
            tracing, "start_tracing", lambda process, exporter, **options: started.update(locals())
        )
        config = ServiceConfig.from_env(
            "payments",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
                "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s%3Dcret,other=1",
                "PAYMENTS_OTEL_TRACES_SAMPLER_ARG": "0.25",
            },
        )
        assert tracing.configure_tracing("payments-relay", config) is True
        assert started["process"] == "payments-relay"
        assert isinstance(started["exporter"], OTLPSpanExporter)
        assert started["exporter"]._endpoint == "http://collector:4318/v1/traces"
        assert started["options"] == {"environment": "development", "sample_ratio": 0.25, "batch": True}

    def test_the_console_exporter_for_development(self):
        config = ServiceConfig.from_env("accounts", {"OTEL_TRACES_EXPORTER": "console"})
        assert tracing.configure_tracing("accounts-consumer", config) is True
        assert tracing.tracer() is not None
        tracing.stop_tracing()
        assert tracing.tracer() is None

    def test_none_wins_over_an_endpoint(self):
        config = ServiceConfig.from_env(
            "accounts",
            {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
        )
        assert tracing.configure_tracing("accounts-api", config) is False

    @pytest.mark.parametrize(
        ("environ", "named"),
        [
            ({"OTEL_TRACES_EXPORTER": "jaeger"}, "PAYMENTS_OTEL_TRACES_EXPORTER"),
            ({"OTEL_TRACES_EXPORTER": "otlp"}, "PAYMENTS_OTEL_EXPORTER_OTLP_ENDPOINT"),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "PAYMENTS_OTEL_EXPORTER_OTLP_ENDPOINT"),
            ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "PAYMENTS_OTEL_TRACES_SAMPLER_ARG"),
        ],
    )
    def test_bad_settings_are_refused_by_name(self, environ, named):
        with pytest.raises(ConfigError, match=named):
            ServiceConfig.from_env("payments", environ)

    def test_the_collectors_headers_are_a_secret(self):
        config = ServiceConfig.from_env("payments", {"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=hush-hush"})
        assert "hush-hush" not in repr(config)
        assert tracing.parse_headers(config.otel_exporter_otlp_headers) == {"x-api-key": "hush-hush"}
        assert tracing.parse_headers(" A=1 , =2,b, c = x%20y ") == {"a": "1", "c": "x y"}

    def test_a_console_span_is_written_as_it_ends(self, capsys):
        tracing.configure_tracing(
            "payments-api", ServiceConfig.from_env("payments", {"OTEL_TRACES_EXPORTER": "console"})
        )
        chosen = tracing.tracer()
        assert chosen is not None
        chosen.start_span("hello").end()
        assert '"name": "hello"' in capsys.readouterr().err


class TestEnvelope:
    def test_an_envelope_without_a_traceparent_is_valid_and_written_without_one(self):
        event = registered_event()
        assert event.traceparent is None
        assert "traceparent" not in event.envelope()
        validate_event(event.envelope())

    def test_a_traceparent_travels_in_the_envelope(self):
        event = Event.from_envelope({**registered_event().envelope(), "traceparent": TRACEPARENT}, key="k")
        assert event.traceparent == TRACEPARENT
        assert json.loads(event.to_bytes())["traceparent"] == TRACEPARENT
        validate_event(event.envelope())

    @pytest.mark.parametrize(
        "malformed",
        [
            "",
            None,
            "garbage",
            TRACEPARENT.upper(),
            TRACEPARENT.replace("00-", "01-", 1),  # only version 00 is written
            TRACEPARENT + "-extra",
            TRACEPARENT[:-1],
            42,
        ],
    )
    def test_the_schema_checks_its_format(self, malformed):
        with pytest.raises(EventSchemaError, match="traceparent"):
            validate_event({**registered_event().envelope(), "traceparent": malformed})


class TestConsumerDecoding:
    def test_a_valid_traceparent_is_kept(self):
        envelope = {**registered_event().envelope(), "traceparent": TRACEPARENT}
        assert decoder().decode(json.dumps(envelope).encode(), b"k").traceparent == TRACEPARENT

    @pytest.mark.parametrize("malformed", ["00-nope", None, 7, TRACEPARENT.upper()])
    def test_a_malformed_traceparent_is_dropped_and_the_event_still_decoded(self, caplog, malformed):
        event = registered_event()
        envelope = {**event.envelope(), "traceparent": malformed}
        decoded = decoder().decode(json.dumps(envelope).encode(), b"k")
        assert (decoded.id, decoded.data, decoded.traceparent) == (event.id, event.data, None)
        assert "trace context is malformed" in caplog.text

    def test_an_envelope_bad_elsewhere_is_still_poison_whatever_its_traceparent(self):
        for traceparent in (TRACEPARENT, "00-nope"):
            envelope = {**registered_event().envelope(), "traceparent": traceparent}
            envelope["data"]["kyc_tier"] = "zero"
            with pytest.raises(PoisonMessage, match="kyc_tier"):
                decoder().decode(json.dumps(envelope).encode(), b"k")


class TestOff:
    def test_the_outbox_writes_what_it_wrote_before(self):
        from shared.events.outbox import OutboxWriter, payload

        event = registered_event()
        assert OutboxWriter(model=None, topic="t")._traced(event) is event
        assert "traceparent" not in json.loads(payload(event))


class TestHttpStatus:
    def test_an_answer_of_ours_that_failed_marks_the_span_a_callers_mistake_does_not(self):
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.trace import StatusCode

        exporter = InMemorySpanExporter()
        tracing.start_tracing("test", exporter, batch=False)
        chosen = tracing.tracer()
        for status in (503, 409):
            tracing.start_request(chosen, "POST", "/v1/payments", {}, "req_1")
            tracing.request_answered(status)
            tracing.finish_request()
        tracing.finish_request()  # a request without a span (started before tracing was): nothing
        failed, refused = exporter.get_finished_spans()
        assert failed.status.status_code is StatusCode.ERROR
        assert refused.status.status_code is StatusCode.UNSET
        assert refused.attributes["http.response.status_code"] == 409


class TestLogs:
    def test_a_json_log_line_inside_a_trace_names_it_while_tracing_is_on(self):
        import logging

        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from shared.logging import JsonFormatter

        formatter = JsonFormatter("payments")
        record = logging.LogRecord("hirfa", logging.INFO, __file__, 1, "paid", None, None)
        assert "trace_id" not in json.loads(formatter.format(record))

        tracing.start_tracing("test", InMemorySpanExporter(), batch=False)
        assert "trace_id" not in json.loads(formatter.format(record))  # outside any trace
        with tracing.tracer().start_as_current_span("request") as span:
            line = json.loads(formatter.format(record))
        assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"
