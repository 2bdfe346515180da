"""Event envelopes and their JSON Schemas, the ledger balance rule, and the consumer's decoding."""

from __future__ import annotations

import json

import pytest

from services.accounts.domain.ledger import Line, UnbalancedEntry, check_balanced
from shared.config import ConfigError, ServiceConfig
from shared.events import EventSchemaError, make_event, validate_event
from shared.events.consumer import EventConsumer, PoisonMessage
from shared.events.envelope import make_events
from shared.events.schemas import known_event_types
from shared.ids import new_id


def registered_data(**overrides):
    data = {
        "artisan_id": new_id("art"),
        "marketplace_id": "cli_demo_marketplace",
        "kyc_tier": 0,
        "tier_cap": {"amount": 0, "currency": "MAD"},
        "region": "fes_meknes",
        "craft": "pottery_ceramics",
        "registered_at": "2026-11-23T10:00:00+00:00",
    }
    data.update(overrides)
    return data


class TestEnvelope:
    def test_make_event_fills_the_envelope(self):
        data = registered_data()
        event = make_event("onboarding.artisan.registered", subject=data["artisan_id"], data=data)
        envelope = json.loads(event.to_bytes())
        assert envelope["source"] == "onboarding"
        assert envelope["id"].startswith("evt_")
        assert envelope["schema_version"] == 1
        assert event.key == data["artisan_id"]
        validate_event(envelope)

    def test_producer_side_check_refuses_bad_data(self):
        with pytest.raises(EventSchemaError):
            make_event("onboarding.artisan.registered", subject="x", data=registered_data(kyc_tier=7))

    def test_unknown_event_type_is_refused(self):
        with pytest.raises(EventSchemaError):
            make_event("onboarding.artisan.teleported", subject="x", data={})

    def test_every_schema_file_is_a_valid_schema(self):
        types = known_event_types()
        assert "onboarding.artisan.registered.v1" in types
        for name in types:
            from shared.events.schemas import _validator

            _validator(name)  # raises if the schema itself is invalid

    def test_make_events_builds_each_event_as_make_event_does(self):
        datas = [registered_data() for _ in range(3)]
        events = make_events("onboarding.artisan.registered", [(data["artisan_id"], data) for data in datas])
        assert [event.data for event in events] == datas
        assert [event.key for event in events] == [data["artisan_id"] for data in datas]
        ids = [event.id for event in events]
        assert ids == sorted(ids) and len(set(ids)) == 3  # one block of ids, in order
        assert len({event.time for event in events}) == 1  # recorded together
        later = make_event("onboarding.artisan.registered", subject="x", data=registered_data())
        assert later.id > ids[-1]
        for event in events:
            validate_event(json.loads(event.to_bytes()))

    def test_make_events_checks_every_event_not_only_the_first(self):
        datas = [registered_data(), registered_data(), registered_data(kyc_tier=7)]
        with pytest.raises(EventSchemaError):
            make_events("onboarding.artisan.registered", [(data["artisan_id"], data) for data in datas])

    def test_a_remembered_date_time_judgement_still_refuses_a_bad_one(self):
        good = registered_data()
        for _ in range(2):  # the second time from the remembered judgements
            make_events("onboarding.artisan.registered", [("x", good), ("y", good)])
            with pytest.raises(EventSchemaError):
                make_events(
                    "onboarding.artisan.registered",
                    [("x", good), ("y", registered_data(registered_at="2026-02-30T10:00:00+00:00"))],
                )

    def test_float_amounts_are_refused_by_schemas(self):
        with pytest.raises(EventSchemaError):
            make_event(
                "onboarding.artisan.registered",
                subject="x",
                data=registered_data(tier_cap={"amount": 1.5, "currency": "MAD"}),
            )


class TestConsumerDecoding:
    def consumer(self):
        return EventConsumer(
            name="test",
            handlers={},
            uow_factory=lambda: None,
            inbox_model=None,
            consumer_factory=lambda: None,
            producer_factory=lambda: None,
            dead_letter_topic="test.dead-letter",
        )

    @pytest.mark.parametrize(
        "value",
        [b"not json", b"\xff\xfe", b"[]", b'{"id": "evt_x"}', b"null"],
    )
    def test_undecodable_messages_are_poison(self, value):
        with pytest.raises(PoisonMessage):
            self.consumer().decode(value, b"k")

    def test_consumer_side_schema_check(self):
        data = registered_data()
        event = make_event("onboarding.artisan.registered", subject=data["artisan_id"], data=data)
        envelope = json.loads(event.to_bytes())
        envelope["data"]["kyc_tier"] = "zero"
        with pytest.raises(PoisonMessage):
            self.consumer().decode(json.dumps(envelope).encode(), b"k")
        assert self.consumer().decode(event.to_bytes(), b"k").id == event.id


class TestConsumerBatchSize:
    def test_read_from_the_environment_with_the_service_prefix_first(self):
        environ = {"CONSUMER_BATCH_SIZE": "50", "ACCOUNTS_CONSUMER_BATCH_SIZE": "500"}
        assert ServiceConfig.from_env("accounts", environ).consumer_batch_size == 500
        assert ServiceConfig.from_env("payments", environ).consumer_batch_size == 50
        assert ServiceConfig.from_env("payments", {}).consumer_batch_size == 200

    def test_at_least_one(self):
        with pytest.raises(ConfigError):
            ServiceConfig.from_env("payments", {"CONSUMER_BATCH_SIZE": "0"})
        with pytest.raises(ValueError):
            EventConsumer(
                name="test",
                handlers={},
                uow_factory=lambda: None,
                inbox_model=None,
                consumer_factory=lambda: None,
                producer_factory=lambda: None,
                dead_letter_topic="test.dead-letter",
                batch_size=0,
            )


class TestLedgerRule:
    def test_balanced_entry_passes(self):
        check_balanced([Line("a", 100, "MAD"), Line("b", -100, "MAD")])

    @pytest.mark.parametrize(
        "lines",
        [
            [Line("a", 100, "MAD")],
            [Line("a", 100, "MAD"), Line("b", -99, "MAD")],
            [Line("a", 100, "MAD"), Line("b", -100, "EUR")],
            [Line("a", 1.0, "MAD"), Line("b", -1.0, "MAD")],
        ],
    )
    def test_unbalanced_entries_are_refused(self, lines):
        with pytest.raises(UnbalancedEntry):
            check_balanced(lines)
