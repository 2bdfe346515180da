"""Batched consumption: many events per database transaction, each still applied exactly once.

Each event runs in its own savepoint with its own inbox row; a failing handler rolls back its own
savepoint only; the database commits once per batch and the offsets only after it.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from services.payments.adapters.orm import InboxMessage, OutboxMessage, Payee
from services.payments.service_layer.projections import HANDLERS as PAYMENTS_HANDLERS
from shared.db import UnitOfWork
from shared.events import Event, make_event
from shared.events.broker import ensure_topics
from shared.events.consumer import EventConsumer, Outcome
from shared.ids import new_id
from shared.runtime import make_event_consumer
from tests.support import wait_until

REGISTERED = "onboarding.artisan.registered"


def registered_event(artisan_id: str | None = None) -> Event:
    artisan_id = artisan_id or new_id("art")
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


class Recorder:
    """A handler with real effects (payments' payee projection and an outbox event) that records
    its calls and can be told to fail for some events."""

    def __init__(self, fail: Callable[[Event, int], Exception | None] = lambda event, attempt: None) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def __call__(self, uow: UnitOfWork, event: Event) -> None:
        self.calls.append(event.id)
        PAYMENTS_HANDLERS[REGISTERED](uow, event)
        # Re-announcing the event itself keeps the outbox rows easy to match to the events.
        uow.add_event(event)
        error = self.fail(event, self.calls.count(event.id))
        if error is not None:
            raise error


def fail_always(*event_ids: str) -> Callable[[Event, int], Exception | None]:
    return lambda event, attempt: RuntimeError("poison") if event.id in event_ids else None


def count(context, model, *where) -> int:
    with context.session_factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def ids(context, column) -> set[str]:
    with context.session_factory() as session:
        return set(session.scalars(sa.select(column)))


def count_commits(context) -> list[str]:
    """Every real COMMIT on the service's database (a released savepoint is not one)."""
    journal: list[str] = []
    sa.event.listen(context.engine, "commit", lambda connection: journal.append("db"))
    return journal


def consumer_with(context, handler, **options: Any) -> EventConsumer:
    return EventConsumer(
        name="test-consumer",
        handlers={REGISTERED: handler},
        uow_factory=context.uow_factory,
        inbox_model=InboxMessage,
        consumer_factory=options.pop("consumer_factory", lambda: None),
        producer_factory=options.pop("producer_factory", lambda: None),
        dead_letter_topic="payments.dead-letter",
        **options,
    )


@pytest.fixture
def context(payments_app):
    return payments_app.extensions["hirfa"]


# -- apply_batch ---------------------------------------------------------------------------


def test_a_batch_is_one_commit_with_one_inbox_row_and_outbox_event_per_event(context):
    handler = Recorder()
    events = [registered_event() for _ in range(10)]
    commits = count_commits(context)
    results = consumer_with(context, handler).apply_batch(events)
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 10
    assert commits == ["db"]
    assert ids(context, InboxMessage.event_id) == {e.id for e in events}
    assert ids(context, OutboxMessage.event_id) == {e.id for e in events}
    assert count(context, Payee) == 10


def test_the_after_batch_step_sees_the_events_applied_now_in_the_batchs_transaction(context):
    seen: list[list[str]] = []

    def after_batch(uow: UnitOfWork, applied) -> None:
        seen.append([event.id for event in applied])
        uow.add_event(registered_event())  # its effects commit with the batch

    handler = Recorder(fail_always())
    consumer = consumer_with(context, handler, after_batch=after_batch)
    first, second, poison = registered_event(), registered_event(), registered_event()
    handler.fail = fail_always(poison.id)
    commits = count_commits(context)
    consumer.apply_batch([first, second, first, poison])
    assert seen == [[first.id, second.id]]  # not the duplicate, not the failed one
    assert commits == ["db"] and count(context, OutboxMessage) == 3
    consumer.apply_batch([first, second])  # all applied before: nothing to see, no call
    assert seen == [[first.id, second.id]]


def test_the_same_event_twice_in_a_batch_is_applied_once(context):
    handler = Recorder()
    first, second = registered_event(), registered_event()
    results = consumer_with(context, handler).apply_batch([first, second, first])
    assert [r.outcome for r in results] == [Outcome.APPLIED, Outcome.APPLIED, Outcome.SKIPPED]
    assert handler.calls == [first.id, second.id]
    assert count(context, InboxMessage) == 2 and count(context, OutboxMessage) == 2


def test_a_batch_redelivered_after_a_crash_between_the_commits_applies_nothing_twice(context):
    """The database committed, the offsets did not: Kafka delivers the same batch again."""
    handler = Recorder()
    consumer = consumer_with(context, handler)
    events = [registered_event() for _ in range(8)]
    assert {r.outcome for r in consumer.apply_batch(events)} == {Outcome.APPLIED}
    commits = count_commits(context)
    assert {r.outcome for r in consumer.apply_batch(events)} == {Outcome.SKIPPED}
    assert handler.calls == [e.id for e in events]
    assert (
        count(context, InboxMessage) == 8
        and count(context, OutboxMessage) == 8
        and count(context, Payee) == 8
    )
    assert len(commits) <= 1  # the redelivery's transaction wrote nothing


def test_a_failing_handler_rolls_back_its_own_savepoint_only(context):
    events = [registered_event() for _ in range(5)]
    poison = events[2]
    # Same artisan as the poison, later in the batch: held back so it cannot overtake it.
    follower = registered_event(poison.data["artisan_id"])
    handler = Recorder(fail_always(poison.id))
    commits = count_commits(context)
    results = consumer_with(context, handler).apply_batch([*events, follower])

    assert [r.outcome for r in results] == [Outcome.APPLIED] * 2 + [Outcome.FAILED] + [
        Outcome.APPLIED
    ] * 2 + [Outcome.DEFERRED]
    assert isinstance(results[2].error, RuntimeError)
    assert commits == ["db"]
    applied = {e.id for e in events} - {poison.id}
    assert ids(context, InboxMessage.event_id) == applied  # the poison is not marked handled
    assert ids(context, OutboxMessage.event_id) == applied  # nor are its outbox events kept
    assert poison.data["artisan_id"] not in ids(context, Payee.artisan_id)  # nor its effect
    assert follower.id not in handler.calls


def test_apply_of_one_event_raises_the_handlers_error(context):
    event = registered_event()
    with pytest.raises(RuntimeError, match="poison"):
        consumer_with(context, Recorder(fail_always(event.id))).apply(event)
    assert count(context, InboxMessage) == 0 and count(context, OutboxMessage) == 0
    assert consumer_with(context, Recorder()).apply(event) is True
    assert consumer_with(context, Recorder()).apply(event) is False


# -- the loop, on a scripted broker --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class ScriptedKafka:
    """The consumer client calls EventConsumer makes (poll, seek, commit, close) over an
    in-memory log, journaling seeks and offset commits; stops the run once the log is drained."""

    def __init__(self, partitions: dict[int, list[Event]], journal: list, stop: threading.Event) -> None:
        self.log = {
            TopicPartition("t", p): [
                Record("t", p, o, e.key.encode(), e.to_bytes()) for o, e in enumerate(events)
            ]
            for p, events in partitions.items()
        }
        self.position = {tp: 0 for tp in self.log}
        self.committed: dict[TopicPartition, int] = {}
        self.journal = journal
        self.stop = stop

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        batch: dict[TopicPartition, list[Record]] = {}
        for tp, records in self.log.items():
            taken = records[
                self.position[tp] : self.position[tp] + max_records - sum(map(len, batch.values()))
            ]
            if taken:
                batch[tp] = taken
                self.position[tp] += len(taken)
        if not batch:
            self.stop.set()
        return batch

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.journal.append(("seek", tp.partition, offset))
        self.position[tp] = offset

    def commit(self, offsets: dict) -> None:
        self.journal.append(("offsets", {tp.partition: meta.offset for tp, meta in offsets.items()}))
        self.committed.update({tp: meta.offset for tp, meta in offsets.items()})

    def close(self) -> None:
        pass


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, dict]] = []

    def send(self, topic: str, key: bytes, value: bytes, headers: list) -> DeadLetters:
        self.sent.append((value, dict(headers)))
        return self

    def get(self, timeout: float) -> None:
        pass

    def close(self) -> None:
        pass


def run_scripted(context, handler, partitions: dict[int, list[Event]], **options: Any):
    stop = threading.Event()
    journal = count_commits(context)
    kafka = ScriptedKafka(partitions, journal, stop)
    letters = DeadLetters()
    consumer = consumer_with(
        context, handler, consumer_factory=lambda: kafka, producer_factory=lambda: letters, **options
    )
    consumer.run(stop)
    return kafka, letters, journal


def test_offsets_are_committed_after_the_database_commit_once_per_batch(context):
    partitions = {0: [registered_event() for _ in range(7)], 1: [registered_event() for _ in range(5)]}
    kafka, _, journal = run_scripted(context, Recorder(), partitions, batch_size=5)
    assert journal == ["db", ("offsets", {0: 5}), "db", ("offsets", {0: 7, 1: 3}), "db", ("offsets", {1: 5})]
    assert count(context, InboxMessage) == 12


def test_a_poison_message_is_retried_then_dead_lettered_without_holding_back_other_subjects(context):
    events = [registered_event() for _ in range(6)]
    poison = events[2]
    follower = registered_event(poison.data["artisan_id"])
    handler = Recorder(fail_always(poison.id))
    kafka, letters, journal = run_scripted(
        context, handler, {0: [*events, follower]}, batch_size=50, max_attempts=3
    )

    assert handler.calls.count(poison.id) == 3
    assert [value for value, _ in letters.sent] == [poison.to_bytes()]
    assert letters.sent[0][1]["error"] == b"RuntimeError: poison"
    # Its batch-mates were applied once, in the first batch; the same-subject follower after it.
    assert all(handler.calls.count(e.id) == 1 for e in [*events, follower] if e is not poison)
    assert handler.calls.index(follower.id) > max(i for i, c in enumerate(handler.calls) if c == poison.id)
    assert ids(context, InboxMessage.event_id) == {e.id for e in [*events, follower]} - {poison.id}
    assert kafka.committed == {TopicPartition("t", 0): 7}
    # Each retry: offsets only up to the poison, then back to it.
    assert journal[:3] == ["db", ("offsets", {0: 2}), ("seek", 0, 2)]


def test_a_database_outage_mid_batch_rewinds_every_partition_and_saves_nothing(context):
    partitions = {0: [registered_event() for _ in range(4)], 1: [registered_event() for _ in range(4)]}
    outage = partitions[1][2]

    def fail(event: Event, attempt: int) -> Exception | None:
        if event.id == outage.id and attempt == 1:
            return sa_exc.OperationalError("INSERT ...", {}, Exception("server closed the connection"))
        return None

    handler = Recorder(fail)
    kafka, letters, journal = run_scripted(context, handler, partitions, batch_size=50)
    assert journal[:2] == [("seek", 0, 0), ("seek", 1, 0)]  # no commit of either kind before
    assert journal[2:] == ["db", ("offsets", {0: 4, 1: 4})]
    assert letters.sent == []
    assert (
        count(context, InboxMessage) == 8
        and count(context, OutboxMessage) == 8
        and count(context, Payee) == 8
    )


# -- through the real broker ----------------------------------------------------------------


class Running:
    def __init__(self, consumer: EventConsumer) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=consumer.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive(), "consumer did not stop"


@dataclasses.dataclass
class OnBroker:
    consumer: EventConsumer
    dead_letter_topic: str
    batch_sizes: list[int]  # the number of events in each apply_batch call, in order


@pytest.fixture
def on_broker(context, broker):
    """``on_broker(handler, events, **config)``: publish ``events`` to a fresh one-partition topic,
    then run a consumer wired as ``hirfa payments consume`` wires it (own group, dead-letter topic
    and inbox name, so nothing leaks between tests)."""
    started: list[Running] = []
    original = context.config

    def run(handler, events: list[Event], **config: Any) -> OnBroker:
        topic = f"batch-test-{uuid.uuid4().hex[:8]}"
        context.config = dataclasses.replace(
            original,
            service_name=f"batchtest{uuid.uuid4().hex[:8]}",
            kafka_bootstrap_servers=broker.bootstrap,
            kafka_topic_partitions=1,
            consumer_session_timeout_ms=6000,
            # The position guard records the topic ids it sees in a transaction of its own; these
            # tests count the transactions that apply events (test_broker_loss.py tests the guard).
            **{"consumer_loss_check_seconds": 0, **config},
        )
        ensure_topics(broker.bootstrap, [topic, context.config.dead_letter_topic], partitions=1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=50)
        for event in events:
            producer.send(topic, key=event.key.encode(), value=event.to_bytes())
        producer.flush(10)
        producer.close()

        consumer = make_event_consumer(context, {REGISTERED: handler}, [topic])
        sizes: list[int] = []
        apply_batch = consumer.apply_batch
        consumer.apply_batch = lambda batch: sizes.append(len(batch)) or apply_batch(batch)
        started.append(Running(consumer))
        return OnBroker(consumer, context.config.dead_letter_topic, sizes)

    yield run
    for running in started:
        running.close()
    context.config = original


def test_events_from_the_broker_are_applied_in_one_commit_per_poll(context, on_broker):
    events = [registered_event() for _ in range(40)]
    commits = count_commits(context)
    run = on_broker(Recorder(), events, consumer_batch_size=200)
    wait_until(lambda: count(context, InboxMessage) == 40, message="all events applied")
    assert run.batch_sizes == [40]
    assert commits == ["db"]


def test_the_batch_size_bounds_each_transaction(context, on_broker):
    events = [registered_event() for _ in range(25)]
    commits = count_commits(context)
    run = on_broker(Recorder(), events, consumer_batch_size=10)
    wait_until(lambda: count(context, InboxMessage) == 25, message="all events applied")
    assert sum(run.batch_sizes) == 25 and max(run.batch_sizes) <= 10
    assert len(commits) == len(run.batch_sizes) >= 3  # one commit per batch


def test_a_poison_event_from_the_broker_is_dead_lettered_and_the_others_applied_once(context, on_broker):
    events = [registered_event() for _ in range(12)]
    poison = events[6]
    handler = Recorder(fail_always(poison.id))
    run = on_broker(handler, events, consumer_max_attempts=3)

    dead = KafkaConsumer(
        run.dead_letter_topic,
        bootstrap_servers=context.config.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=30000,
        group_id=None,
    )
    letter = next(iter(dead))
    dead.close()
    assert letter.value == poison.to_bytes()
    assert dict(letter.headers)["error"] == b"RuntimeError: poison"
    wait_until(lambda: count(context, InboxMessage) == 11, message="the others applied")
    assert handler.calls.count(poison.id) == 3
    assert all(handler.calls.count(e.id) == 1 for e in events if e is not poison)
    assert ids(context, OutboxMessage.event_id) == {e.id for e in events} - {poison.id}
