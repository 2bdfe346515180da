"""What a broker acknowledged and then lost is not lost: the relay publishes it again, and
consumers go back to read it (the embedded broker keeps everything in memory, so a restart is a
broker that lost every topic, every record and every committed offset)."""

from __future__ import annotations

import dataclasses
import itertools
import uuid

import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaConnectionError
from kafka.structs import OffsetAndMetadata

from services.onboarding.adapters.orm import BrokerTopic as OnboardingBrokerTopic
from services.onboarding.adapters.orm import OutboxMessage as OnboardingOutbox
from services.payments.adapters.orm import BrokerTopic as PaymentsBrokerTopic
from services.payments.adapters.orm import Payee
from services.payments.service_layer.projections import HANDLERS as PAYMENTS_HANDLERS
from shared.events.broker import ensure_topics
from shared.events.consumer import PositionGuard
from shared.events.lost_records import RELAY_READER, PartitionView, Tail
from shared.runtime import make_event_consumer, make_relay
from tests.integration.test_event_flow import Workers, count, register, values, with_broker
from tests.support import Broker, wait_until

TOPIC = "onboarding.events"


@pytest.fixture
def workers():
    workers = Workers()
    yield workers
    workers.close_all()


@pytest.fixture
def fresh_broker(tmp_path):
    broker = Broker(tmp_path / "broker.log")
    broker.start()
    yield broker
    broker.stop()


def outbox_rows(context) -> list[OnboardingOutbox]:
    with context.session_factory() as session:
        return list(session.scalars(sa.select(OnboardingOutbox).order_by(OnboardingOutbox.seq)))


def event_ids_on_topic(bootstrap: str, expected: int) -> list[str]:
    """Every event id on the topic, read from its beginning (at most ``expected`` of them)."""
    reader = KafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=5000,
    )
    try:
        return [dict(message.headers)["event_id"].decode() for message in itertools.islice(reader, expected)]
    finally:
        reader.close()


def restart(broker: Broker) -> None:
    """The embedded broker keeps everything in memory: restarted, it has lost it all."""
    broker.stop()
    broker.start()


# -- the relay -------------------------------------------------------------------------------------


def test_the_relay_publishes_again_what_a_restarted_broker_lost(
    fresh_broker, onboarding, onboarding_app, marketplace_headers
):
    context = with_broker(onboarding_app, fresh_broker.bootstrap)
    relay = make_relay(context)
    for _ in range(4):
        register(onboarding, marketplace_headers)
    assert relay.republish_lost() == 0  # first look: the ids are recorded, nothing was published
    assert relay.publish_batch().published == 4
    published = outbox_rows(context)
    # Each row carries where the broker wrote it.
    assert all(row.broker_partition is not None and row.broker_offset is not None for row in published)
    positions = {(row.broker_partition, row.broker_offset) for row in published}
    assert len(positions) == 4
    assert relay.republish_lost() == 0  # the broker holds all of it

    restart(fresh_broker)
    late = register(onboarding, marketplace_headers)
    assert relay.republish_lost() == 4
    rows = outbox_rows(context)
    assert [row.published_at for row in rows] == [None] * 5
    assert all(row.broker_offset is None for row in rows)

    assert relay.publish_batch().published == 5
    on_topic = event_ids_on_topic(fresh_broker.bootstrap, 5)
    assert sorted(on_topic) == sorted(row.event_id for row in rows)
    assert late in {row.key for row in rows}
    assert relay.republish_lost() == 0  # and the new topic is the one remembered now


@dataclasses.dataclass
class FakeAck:
    partition: int
    offset: int


class FakeFuture:
    def __init__(self, ack: FakeAck) -> None:
        self.ack = ack

    def get(self, timeout=None) -> FakeAck:
        return self.ack


class FakeBroker:
    """Two partitions that keep the event ids written to them, and what a look at them says."""

    def __init__(self) -> None:
        self.logs: dict[int, list[str]] = {0: [], 1: []}
        self.topic_id = "topic-1"
        self.cluster_id = "cluster-1"

    def send(self, topic, key, value, headers) -> FakeFuture:
        partition = len(key) % 2
        self.logs[partition].append(dict(headers)["event_id"].decode())
        return FakeFuture(FakeAck(partition, len(self.logs[partition]) - 1))

    def flush(self, timeout=None) -> None:
        pass

    def close(self, timeout=None) -> None:
        pass

    def partitions(self, topics: list[str]) -> list[PartitionView]:
        return [
            PartitionView(topic, partition, None, self.topic_id, self.cluster_id)
            for topic in topics
            for partition in self.logs
        ]

    def tails(self, offsets) -> dict[tuple[str, int], Tail]:
        tails = {}
        for (topic, partition), offset in offsets.items():
            log = self.logs[partition]
            tails[(topic, partition)] = Tail(len(log), log[offset] if offset < len(log) else None)
        return tails


@pytest.fixture
def fake_relay(onboarding_app, monkeypatch):
    context = onboarding_app.extensions["hirfa"]
    broker = FakeBroker()
    monkeypatch.setattr("shared.events.relay.ensure_topics", lambda *args, **kwargs: None)
    relay = make_relay(context)
    relay._producer_factory = lambda: broker
    relay.broker_look = broker
    return context, relay, broker


def add_outbox_rows(context, keys: list[str]) -> None:
    with context.session_factory() as session:
        for key in keys:
            session.add(
                OnboardingOutbox(
                    event_id=f"evt_{uuid.uuid4().hex[:26]}",
                    event_type="test.event",
                    topic=TOPIC,
                    key=key,
                    payload="{}",
                )
            )
        session.commit()


def test_a_partition_cut_short_has_the_rows_from_its_new_end_published_again(fake_relay):
    context, relay, broker = fake_relay
    add_outbox_rows(context, ["a", "bb", "cc", "d", "ee", "f"])  # partition 1, 0, 0, 1, 0, 1
    assert relay.republish_lost() == 0
    assert relay.publish_batch().published == 6
    assert [len(log) for log in broker.logs.values()] == [3, 3]

    del broker.logs[0][1:]  # an unclean leader election kept offset 0 only
    assert relay.republish_lost() == 2
    due = [row.key for row in outbox_rows(context) if row.published_at is None]
    assert due == ["cc", "ee"]  # offsets 1 and 2 of partition 0, nothing else

    assert relay.publish_batch().published == 2
    assert relay.republish_lost() == 0
    by_key = {row.key: (row.broker_partition, row.broker_offset) for row in outbox_rows(context)}
    assert by_key["cc"] == (0, 1) and by_key["ee"] == (0, 2)


def test_a_partition_cut_and_written_again_has_all_its_rows_published_again(fake_relay):
    context, relay, broker = fake_relay
    add_outbox_rows(context, ["a", "bb", "cc", "d", "ee", "f"])
    relay.republish_lost()
    relay.publish_batch()
    # Cut at offset 1, then written to by someone else past where it was: offsets cannot tell.
    broker.logs[0][1:] = ["evt_other_1", "evt_other_2", "evt_other_3"]
    assert relay.republish_lost() == 3
    assert [row.key for row in outbox_rows(context) if row.published_at is None] == ["bb", "cc", "ee"]


@pytest.mark.parametrize("change", ["topic_id", "cluster_id"])
def test_a_topic_made_anew_has_every_row_published_again_even_at_the_same_offsets(fake_relay, change):
    context, relay, broker = fake_relay
    add_outbox_rows(context, ["a", "bb", "cc"])
    assert relay.republish_lost() == 0
    assert relay.publish_batch().published == 3
    # Made anew, and written to since up to where it was: only the id tells.
    setattr(broker, change, "new")
    for log in broker.logs.values():
        log[:] = [f"evt_other_{n}" for n in range(len(log))]
    assert relay.republish_lost() == 3
    assert relay.publish_batch().published == 3
    assert relay.republish_lost() == 0


def test_the_ids_are_written_once_and_not_again_while_nothing_changes(fake_relay):
    context, relay, broker = fake_relay
    relay.republish_lost()
    with context.session_factory() as session:
        first = session.execute(
            sa.select(OnboardingBrokerTopic.partition, OnboardingBrokerTopic.seen_at)
        ).all()
    relay.republish_lost()
    with context.session_factory() as session:
        rows = session.scalars(sa.select(OnboardingBrokerTopic)).all()
        assert sorted((row.partition, row.seen_at) for row in rows) == sorted(first)
        assert {(row.reader, row.topic, row.topic_id, row.cluster_id) for row in rows} == {
            (RELAY_READER, TOPIC, "topic-1", "cluster-1")
        }


def test_the_relay_publishes_nothing_until_the_broker_has_said_what_it_holds(fake_relay):
    context, relay, broker = fake_relay
    add_outbox_rows(context, ["a"])

    def broker_down(topics):
        raise KafkaConnectionError("broker down")

    relay.broker_look = type("BrokerDown", (), {"partitions": staticmethod(broker_down)})()
    relay.poll_interval = 0.01

    class StopAfterTwoWaits:
        def __init__(self) -> None:
            self.waits = 0

        def is_set(self) -> bool:
            return self.waits >= 2

        def wait(self, seconds) -> None:
            self.waits += 1

    relay.run(StopAfterTwoWaits())
    assert outbox_rows(context)[0].published_at is None
    relay.broker_look = broker
    relay.run(StopAfterTwoWaits())
    assert outbox_rows(context)[0].published_at is not None


# -- consumers -------------------------------------------------------------------------------------


def commit_for_group(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit offsets for ``group`` from outside it, as a member that kept its old positions
    across the broker's restart did (the embedded broker takes such commits)."""
    committer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        committer.assign(list(offsets))
        committer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()})
    finally:
        committer.close()


@pytest.mark.parametrize(
    "stale_offset",
    [
        pytest.param(18, id="committed-beyond-the-new-end"),
        # Inside the new log: only the topic's new id tells the offsets belong to the old one.
        pytest.param(1, id="committed-inside-the-new-log"),
    ],
)
def test_a_consumer_reads_again_the_topics_a_restarted_broker_made_anew(
    fresh_broker, onboarding, onboarding_app, payments_app, marketplace_headers, workers, stale_offset
):
    onboarding_ctx = with_broker(onboarding_app, fresh_broker.bootstrap)
    payments_ctx = with_broker(payments_app, fresh_broker.bootstrap, consumer_loss_check_seconds=0.5)
    relay = make_relay(onboarding_ctx)

    def consumer():
        return make_event_consumer(payments_ctx, PAYMENTS_HANDLERS, [TOPIC])

    first = [register(onboarding, marketplace_headers) for _ in range(6)]
    relay.republish_lost()
    assert relay.publish_batch().published == 6
    running = workers(consumer().run)
    wait_until(lambda: count(payments_ctx, Payee) == 6, timeout=60, message="the first payees")
    running.close()
    with payments_ctx.session_factory() as session:
        recorded = session.scalars(sa.select(PaymentsBrokerTopic.topic_id).distinct()).all()
    assert len(recorded) == 1 and recorded[0]  # the consumer remembers the topic it read

    restart(fresh_broker)
    ensure_topics(fresh_broker.bootstrap, [TOPIC])
    group = payments_ctx.config.consumer_group
    commit_for_group(
        fresh_broker.bootstrap, group, {TopicPartition(TOPIC, p): stale_offset for p in range(3)}
    )
    later = [register(onboarding, marketplace_headers) for _ in range(6)]
    assert relay.republish_lost() == 6
    assert relay.publish_batch().published == 12

    workers(consumer().run)
    wait_until(lambda: count(payments_ctx, Payee) == 12, timeout=60, message="the payees after the restart")
    assert values(payments_ctx, Payee.artisan_id) == set(first + later)


# -- the position guard, on a consumer double --------------------------------------------------------


class FakeCluster:
    def __init__(self, topic_id: str) -> None:
        self.topic_ids = {TOPIC: topic_id}
        self.cluster_id = "cluster-1"

    def topic_id(self, topic: str) -> str:
        return self.topic_ids[topic]


class FakeGroupConsumer:
    """What the guard reads of a group member: its partitions, positions and fetches' ends."""

    def __init__(self, positions: dict[int, int], ends: dict[int, int], topic_id: str = "topic-1") -> None:
        self.positions = {TopicPartition(TOPIC, p): offset for p, offset in positions.items()}
        self.ends = {TopicPartition(TOPIC, p): end for p, end in ends.items()}
        self._cluster = FakeCluster(topic_id)
        self.committed: list[dict] = []

    def assignment(self):
        return set(self.positions)

    def highwater(self, tp):
        return self.ends[tp]

    def position(self, tp, timeout_ms=None):
        return self.positions[tp]

    def beginning_offsets(self, partitions, timeout_ms=None):
        return {tp: 0 for tp in partitions}

    def seek(self, tp, offset):
        self.positions[tp] = offset


def guard_for(context) -> PositionGuard:
    return PositionGuard(
        reader="hirfa-payments",
        session_factory=context.session_factory,
        topic_model=PaymentsBrokerTopic,
        interval_seconds=60,
    )


def test_the_guard_rewinds_a_position_two_looks_find_beyond_the_end_and_commits_the_new_start(payments_app):
    context = payments_app.extensions["hirfa"]
    guard = guard_for(context)
    consumer = FakeGroupConsumer(positions={0: 18, 1: 23}, ends={0: 1, 1: 23})
    # Once may be a new leader's high watermark catching up: looked at again soon, not rewound.
    assert guard.check(consumer, consumer.committed.append) == set()
    assert consumer.committed == []
    assert guard.due(consumer) is False
    guard._due_at = 0.0  # the retry a second later
    rewound = guard.check(consumer, consumer.committed.append)
    assert rewound == {TopicPartition(TOPIC, 0)}
    assert consumer.positions == {TopicPartition(TOPIC, 0): 0, TopicPartition(TOPIC, 1): 23}
    assert consumer.committed == [{TopicPartition(TOPIC, 0): 0}]


def test_the_guard_remembers_the_topic_ids_across_a_restart_and_rewinds_a_topic_made_anew(payments_app):
    context = payments_app.extensions["hirfa"]
    before = FakeGroupConsumer(positions={0: 5, 1: 7}, ends={0: 5, 1: 9})
    assert guard_for(context).check(before, before.committed.append) == set()

    commits = []
    sa.event.listen(context.engine, "commit", lambda connection: commits.append("db"))
    guard = guard_for(context)
    guard.check(before, before.committed.append)
    assert commits == []  # nothing new to record: no write

    # The process starts again after the broker made the topic anew and it grew past the old
    # positions: only the id recorded by the process before tells.
    after = FakeGroupConsumer(positions={0: 5, 1: 7}, ends={0: 30, 1: 30}, topic_id="topic-2")
    assert guard_for(context).check(after, after.committed.append) == set(after.positions)
    assert after.committed == [{tp: 0 for tp in after.positions}]
    with context.session_factory() as session:
        assert set(session.scalars(sa.select(PaymentsBrokerTopic.topic_id))) == {"topic-2"}


def test_a_partition_the_broker_no_longer_has_is_looked_at_again_and_the_others_are_rewound(payments_app):
    """A topic made anew with fewer partitions than the assignment names: kafka-python's
    beginning_offsets raises KeyError for the whole request. What the broker has is rewound; the
    missing partition keeps its old ids on record, so a later look still sees it changed."""
    context = payments_app.extensions["hirfa"]
    guard = guard_for(context)
    before = FakeGroupConsumer(positions={0: 5, 1: 7}, ends={0: 5, 1: 9})
    guard.check(before, before.committed.append)

    class FewerPartitions(FakeGroupConsumer):
        def beginning_offsets(self, partitions, timeout_ms=None):
            if TopicPartition(TOPIC, 1) in partitions:
                raise KeyError(TopicPartition(TOPIC, 1))
            return super().beginning_offsets(partitions, timeout_ms)

    after = FewerPartitions(positions={0: 5, 1: 7}, ends={0: 3, 1: 3}, topic_id="topic-2")
    assert guard.check(after, after.committed.append) == {TopicPartition(TOPIC, 0)}
    assert after.committed == [{TopicPartition(TOPIC, 0): 0}]
    assert after.positions[TopicPartition(TOPIC, 1)] == 7
    assert guard.due(after) is False  # soon, not at once

    # Once the broker has the partition again, the next look rewinds it too.
    healed = FakeGroupConsumer(positions={0: 0, 1: 7}, ends={0: 3, 1: 3}, topic_id="topic-2")
    guard._due_at = 0.0
    assert guard.check(healed, healed.committed.append) == {TopicPartition(TOPIC, 1)}
    assert healed.committed == [{TopicPartition(TOPIC, 1): 0}]


def test_a_high_watermark_that_dips_once_and_recovers_rewinds_nothing(payments_app):
    guard = guard_for(payments_app.extensions["hirfa"])
    consumer = FakeGroupConsumer(positions={0: 18}, ends={0: 10})
    assert guard.check(consumer, consumer.committed.append) == set()
    consumer.ends[TopicPartition(TOPIC, 0)] = 20  # the new leader caught up
    assert guard.check(consumer, consumer.committed.append) == set()
    consumer.ends[TopicPartition(TOPIC, 0)] = 10  # a later, single dip starts the count again
    assert guard.check(consumer, consumer.committed.append) == set()
    assert consumer.positions == {TopicPartition(TOPIC, 0): 18}
    assert consumer.committed == []


def test_the_guard_looks_again_after_a_rebalance_and_at_its_interval(payments_app):
    guard = guard_for(payments_app.extensions["hirfa"])
    consumer = FakeGroupConsumer(positions={0: 1}, ends={0: 1})
    assert guard.due(consumer)
    guard.check(consumer, consumer.committed.append)
    assert not guard.due(consumer)
    consumer.positions[TopicPartition(TOPIC, 1)] = 0  # another partition assigned
    consumer.ends[TopicPartition(TOPIC, 1)] = 0
    assert guard.due(consumer)
