"""Dead letters without a broker: how they are read from records, named, redriven once each, and
shown without secrets."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from services.payments.config import PaymentsConfig
from shared.events.dead_letters import (
    DeadLetter,
    DeadLetterError,
    DeadLetters,
    marker_topic,
    redact,
    redrive,
    secret_values,
)

TOPIC = "payments.dead-letter"


def envelope(event_id: str) -> bytes:
    return json.dumps({"id": event_id, "type": "onboarding.artisan.registered", "data": {}}).encode()


def record(
    partition: int, offset: int, value: bytes, key: bytes = b"art_1", topic: str | None = "onboarding.events"
):
    headers = [("error", b"RuntimeError: boom"), ("consumer", b"hirfa-payments")]
    if topic:
        headers += [
            ("original_topic", topic.encode()),
            ("original_partition", b"2"),
            ("original_offset", b"7"),
        ]
    return SimpleNamespace(
        partition=partition, offset=offset, key=key, value=value, timestamp=1_790_000_000_000, headers=headers
    )


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, list]] = []

    def send(self, topic, key=None, value=None, headers=None):
        self.sent.append((topic, key, value, headers or []))
        return SimpleNamespace(get=lambda timeout: None)


def test_a_dead_letter_is_read_from_its_record():
    letter = DeadLetter.from_record(record(1, 4, envelope("evt_A")))

    assert (letter.ref, letter.event_id, letter.event_type) == (
        "1:4",
        "evt_A",
        "onboarding.artisan.registered",
    )
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == (
        "onboarding.events",
        2,
        7,
    )
    assert (letter.error, letter.consumer, letter.key) == ("RuntimeError: boom", "hirfa-payments", b"art_1")


def test_a_message_that_is_not_json_has_no_event_id():
    letter = DeadLetter.from_record(record(0, 0, b"{not json"))

    assert letter.event_id is None and letter.ref == "0:0"


def test_a_dead_letter_is_found_by_ref_offset_or_event_id():
    letters = [
        DeadLetter.from_record(r) for r in (record(0, 0, envelope("evt_A")), record(1, 0, envelope("evt_B")))
    ]
    found = DeadLetters(TOPIC, letters, frozenset())

    assert found.find("1:0") == [letters[1]]
    assert found.find("evt_A") == [letters[0]]
    with pytest.raises(DeadLetterError, match="several partitions: name one of 0:0, 1:0"):
        found.find("0")
    with pytest.raises(DeadLetterError, match="no dead letter 2:0 on payments.dead-letter"):
        found.find("2:0")


def test_redrive_republishes_keyed_as_before_and_marks_each_letter_once():
    letters = [
        DeadLetter.from_record(record(0, 0, envelope("evt_A"))),
        DeadLetter.from_record(record(0, 1, envelope("evt_A"))),  # the same event, dead-lettered again
        DeadLetter.from_record(record(0, 2, b"{not json", topic=None)),
    ]
    producer = FakeProducer()

    result = redrive(producer, DeadLetters(TOPIC, letters, frozenset()), letters)

    republished = [sent for sent in producer.sent if sent[0] == "onboarding.events"]
    markers = [sent for sent in producer.sent if sent[0] == marker_topic(TOPIC)]
    assert (result.redriven, result.already_redriven, result.unroutable) == (2, 0, ["0:2"])
    assert [(key, value) for _, key, value, _ in republished] == [(b"art_1", envelope("evt_A"))]
    assert ("event_id", b"evt_A") in republished[0][3]
    assert [key for _, key, _, _ in markers] == [b"0:0", b"0:1"]


def test_a_letter_already_redriven_is_skipped():
    letter = DeadLetter.from_record(record(0, 0, envelope("evt_A")))
    producer = FakeProducer()
    found = DeadLetters(TOPIC, [letter], frozenset({(letter.ref, letter.fingerprint)}))

    result = redrive(producer, found, [letter])

    assert (result.redriven, result.already_redriven, producer.sent) == (0, 1, [])


def test_a_letter_at_a_redriven_place_with_another_value_is_not_skipped():
    """A recreated dead-letter topic reuses offsets: the marker's fingerprint tells them apart."""
    old = DeadLetter.from_record(record(0, 0, envelope("evt_A")))
    new = DeadLetter.from_record(record(0, 0, envelope("evt_B")))

    assert not DeadLetters(TOPIC, [new], frozenset({(old.ref, old.fingerprint)})).is_redriven(new)


def test_what_is_shown_has_no_secret_and_no_personal_data():
    config = PaymentsConfig.from_env(
        "payments",
        environ={"PAYMENTS_M2T_API_KEY": "m2t-key-that-must-not-show"},
        database_url="postgresql://payments:db-password-x7@db/payments",
    )

    shown = redact("key m2t-key-that-must-not-show, db-password-x7, phone 0612345678", secret_values(config))

    assert "m2t-key-that-must-not-show" not in shown and "db-password-x7" not in shown
    assert "0612345678" not in shown and "[secret]" in shown


def test_redrive_says_in_one_line_when_the_broker_is_out_of_reach(monkeypatch):
    from click.testing import CliRunner
    from kafka.errors import BrokerNotAvailableError

    import shared.runtime
    from services.payments.cli import cli

    letters = [DeadLetter.from_record(record(0, 1, envelope("evt_1")))]
    monkeypatch.setattr(
        shared.runtime, "load_dead_letters", lambda *_: DeadLetters(TOPIC, letters, frozenset())
    )

    def no_broker(*_args, **_kwargs):
        raise BrokerNotAvailableError()

    monkeypatch.setattr(shared.runtime, "make_producer", no_broker)

    result = CliRunner().invoke(cli, ["dead-letters", "redrive", "--all"])

    assert result.exit_code == 1 and "redrive could not start: BrokerNotAvailableError" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
