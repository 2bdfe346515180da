"""Telling a broker that lost acknowledged records from one that did not (shared/events/lost_records.py)."""

from __future__ import annotations

import dataclasses

import pytest
from kafka.errors import ClusterAuthorizationFailedError, KafkaTimeoutError, OffsetOutOfRangeError
from kafka.structs import TopicPartition

from shared.events.lost_records import (
    LastAcknowledged,
    LookInterrupted,
    Loss,
    LossReason,
    PartitionView,
    SeenIds,
    Tail,
    TopicMissing,
    partitions_with_admin,
    positions_to_rewind,
    published_losses,
    seen_after,
    tails_with_consumer,
)

T = "payments.events"
SEEN = {(T, 0): SeenIds("cluster-1", "topic-1"), (T, 1): SeenIds("cluster-1", "topic-1")}


def view(partition: int, end: int | None = None, topic_id: str | None = "topic-1", cluster_id="cluster-1"):
    return PartitionView(T, partition, end, topic_id, cluster_id)


# -- the relay: what it was acknowledged ------------------------------------------------------------


def test_nothing_is_lost_while_the_last_acknowledged_records_are_where_the_broker_said():
    acknowledged = {(T, 0): LastAcknowledged(4, "evt_a"), (T, 1): LastAcknowledged(2, "evt_b")}
    tails = {(T, 0): Tail(5, "evt_a"), (T, 1): Tail(9, "evt_b")}
    assert published_losses([view(0), view(1)], SEEN, acknowledged, tails) == []


def test_a_partition_that_ends_at_or_before_an_acknowledged_offset_lost_what_follows_its_end():
    acknowledged = {(T, 0): LastAcknowledged(4, "evt_a"), (T, 1): LastAcknowledged(2, "evt_b")}
    tails = {(T, 0): Tail(2, None), (T, 1): Tail(3, "evt_b")}
    assert published_losses([view(0), view(1)], SEEN, acknowledged, tails) == [
        Loss(T, 0, 2, LossReason.LOG_TRUNCATED)
    ]


def test_another_record_at_an_acknowledged_offset_loses_the_whole_partition():
    acknowledged = {(T, 0): LastAcknowledged(4, "evt_a")}
    assert published_losses([view(0)], SEEN, acknowledged, {(T, 0): Tail(10, "evt_other")}) == [
        Loss(T, 0, 0, LossReason.LOG_REWRITTEN)
    ]


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        ({"topic_id": "topic-2"}, LossReason.TOPIC_RECREATED),
        ({"cluster_id": "cluster-2"}, LossReason.CLUSTER_CHANGED),
    ],
)
def test_a_new_topic_or_cluster_id_loses_every_partition_whatever_the_offsets_say(changed, reason):
    views = [dataclasses.replace(view(p), **changed) for p in (0, 1)]
    tails = {(T, 0): Tail(5, "evt_a")}  # even the record read back is the one acknowledged
    assert published_losses(views, SEEN, {(T, 0): LastAcknowledged(4, "evt_a")}, tails) == [
        Loss(T, 0, 0, reason),
        Loss(T, 1, 0, reason),
    ]


def test_an_id_the_broker_does_not_give_or_a_partition_never_seen_proves_nothing():
    views = [view(0, topic_id=None, cluster_id=None), view(2, topic_id="topic-9")]
    assert published_losses(views, SEEN, {}, {}) == []


# -- consumers: their positions ---------------------------------------------------------------------


def test_a_position_beyond_the_end_of_the_log_is_read_again_from_the_beginning():
    views = [view(0, end=1), view(1, end=23)]
    positions = {(T, 0): 18, (T, 1): 23}
    assert positions_to_rewind(views, SEEN, positions) == [Loss(T, 0, 0, LossReason.LOG_TRUNCATED)]


def test_a_topic_made_anew_is_read_again_even_where_the_position_is_inside_the_new_log():
    views = [view(0, end=40, topic_id="topic-2")]
    assert positions_to_rewind(views, SEEN, {(T, 0): 18}) == [Loss(T, 0, 0, LossReason.TOPIC_RECREATED)]


def test_a_partition_whose_end_is_not_known_yet_is_left_alone():
    assert positions_to_rewind([view(0, end=None)], SEEN, {(T, 0): 18}) == []


def test_an_id_not_given_this_time_is_not_forgotten():
    before = SeenIds("cluster-1", "topic-1")
    assert seen_after(before, view(0, topic_id=None, cluster_id=None)) == before
    assert seen_after(before, view(0, topic_id="topic-2")) == SeenIds("cluster-1", "topic-2")
    assert seen_after(None, view(0)) == before


# -- asking the broker ------------------------------------------------------------------------------


class FakeAdmin:
    def __init__(self, topics: dict, cluster: dict | Exception) -> None:
        self.topics, self.cluster = topics, cluster

    def describe_cluster(self):
        if isinstance(self.cluster, Exception):
            raise self.cluster
        return self.cluster

    def describe_topics(self, topics):
        return [self.topics[t] for t in topics if t in self.topics]


def described(topic_id: str, partitions: int = 2, error_code: int = 0) -> dict:
    return {
        "name": T,
        "error_code": error_code,
        "topic_id": topic_id,
        "partitions": [{"partition_index": p} for p in range(partitions)],
    }


def test_the_admin_look_gives_each_partition_with_its_ids():
    admin = FakeAdmin({T: described("01a2-uuid")}, {"cluster_id": "tansu_cluster"})
    assert partitions_with_admin(admin, [T]) == [
        PartitionView(T, 0, None, "01a2-uuid", "tansu_cluster"),
        PartitionView(T, 1, None, "01a2-uuid", "tansu_cluster"),
    ]


def test_a_cluster_it_may_not_describe_and_a_null_topic_id_count_as_unknown():
    admin = FakeAdmin(
        {T: described("00000000-0000-0000-0000-000000000000", 1)},
        ClusterAuthorizationFailedError("not allowed"),
    )
    assert partitions_with_admin(admin, [T]) == [PartitionView(T, 0, None, None, None)]


def test_a_broker_that_does_not_answer_is_an_error_and_a_stop_request_ends_the_look():
    with pytest.raises(KafkaTimeoutError):
        partitions_with_admin(FakeAdmin({T: described("x")}, KafkaTimeoutError("no answer")), [T])

    def stop():
        raise LookInterrupted

    with pytest.raises(LookInterrupted):
        partitions_with_admin(FakeAdmin({T: described("x")}, {"cluster_id": "c"}), [T], between=stop)
    with pytest.raises(LookInterrupted):
        tails_with_consumer(FakeReader({0: ["evt_a"]}), {(T, 0): 0}, between=stop)


@pytest.mark.parametrize("topics", [{}, {T: described("x", error_code=3)}, {T: described("x", partitions=0)}])
def test_a_topic_the_broker_does_not_have_is_missing(topics):
    with pytest.raises(TopicMissing):
        partitions_with_admin(FakeAdmin(topics, {"cluster_id": "c"}), [T])


@dataclasses.dataclass
class Record:
    offset: int
    headers: list


class FakeReader:
    """A consumer of no group over partitions holding ``logs`` (event ids by offset); a broker
    that answers a fetch beyond the end with nothing (the embedded one) or with an error (Kafka)."""

    def __init__(
        self, logs: dict[int, list[str]], out_of_range_error: bool = False, log_start: int = 0
    ) -> None:
        self.logs = logs
        self.out_of_range_error = out_of_range_error
        # Records before it were deleted by retention (``logs`` still lists them for their offsets).
        self.log_start = log_start
        self.positions: dict[TopicPartition, int] = {}
        self.fetched: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()

    def assign(self, partitions):
        self.positions = {tp: 0 for tp in partitions}

    def seek(self, tp, offset):
        self.positions[tp] = offset

    def pause(self, tp):
        self.paused.add(tp)

    def highwater(self, tp):
        return len(self.logs[tp.partition]) if tp in self.fetched else None

    def poll(self, timeout_ms):
        answer = {}
        for tp, offset in self.positions.items():
            if tp in self.paused:
                continue
            log = self.logs[tp.partition]
            if (offset >= len(log) or offset < self.log_start) and self.out_of_range_error:
                raise OffsetOutOfRangeError({tp: offset})
            self.fetched.add(tp)
            if offset < len(log):
                answer[tp] = [Record(o, [("event_id", log[o].encode())]) for o in range(offset, len(log))]
        return answer

    def beginning_offsets(self, partitions, timeout_ms):
        return {tp: self.log_start for tp in partitions}

    def end_offsets(self, partitions, timeout_ms):
        return {tp: len(self.logs[tp.partition]) for tp in partitions}


def test_reading_back_the_acknowledged_records_tells_what_is_there_and_where_each_partition_ends():
    reader = FakeReader({0: ["evt_a", "evt_b", "evt_c"], 1: ["evt_d"]})
    tails = tails_with_consumer(reader, {(T, 0): 1, (T, 1): 3})
    assert tails == {(T, 0): Tail(3, "evt_b"), (T, 1): Tail(1, None)}


def test_a_broker_that_answers_out_of_range_past_the_end_has_lost_what_follows_the_end():
    reader = FakeReader({0: ["evt_a"]}, out_of_range_error=True)
    tails = tails_with_consumer(reader, {(T, 0): 5})
    assert tails == {(T, 0): Tail(1, None)}
    assert published_losses([view(0)], SEEN, {(T, 0): LastAcknowledged(5, "evt_a")}, tails) == [
        Loss(T, 0, 1, LossReason.LOG_TRUNCATED)
    ]


def test_an_acknowledged_record_that_retention_deleted_is_no_loss():
    """The log now starts after the last acknowledged record (the relay was idle longer than the
    topic's retention): nothing to publish again, not the whole partition."""
    reader = FakeReader({0: ["evt_a", "evt_b", "evt_c", "evt_d"]}, out_of_range_error=True, log_start=3)
    tails = tails_with_consumer(reader, {(T, 0): 1})
    assert tails == {(T, 0): Tail(4, None, aged_out=True)}
    assert published_losses([view(0)], SEEN, {(T, 0): LastAcknowledged(1, "evt_b")}, tails) == []


def test_a_broker_that_does_not_answer_in_time_is_an_error_not_a_loss():
    class Silent(FakeReader):
        def poll(self, timeout_ms):
            return {}

    with pytest.raises(KafkaTimeoutError):
        tails_with_consumer(Silent({0: ["evt_a"]}), {(T, 0): 0}, timeout_seconds=0.2)
