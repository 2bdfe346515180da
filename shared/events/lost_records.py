"""Noticing that the broker lost records it had acknowledged.

An acknowledged record can still vanish: a broker on memory storage restarts empty (the embedded
development broker), a topic is deleted and made again by mistake, an unclean leader election
cuts a partition's log short. Kafka says nothing of it to a producer or to a consumer; what shows
is the broker's own account of its topics:

- the cluster id or a topic's id is not the one seen before: the topic (or the cluster) was made
  anew, and everything the old one held is gone;
- a partition ends (its high watermark) at or before an offset the broker gave out: the records
  from that end on are gone;
- the record at an offset the broker gave out is another record: the log was cut and written
  again.

The relay compares the broker's account with what it was told (the positions recorded on outbox
rows: it reads back the last record it was acknowledged in each partition) and republishes what
may have been lost; a consumer compares it with its own position and goes back to where the
records published again will be. Both record the ids they saw, per partition
(``BrokerTopicMixin``), so a process started after the loss still notices it.

The end of a partition is taken from fetch responses (their high watermark), never from
ListOffsets: the embedded broker answers ListOffsets with the start of the last record batch plus
one, not the end of the log.

One look is a metadata request and, for the relay, one fetch per partition: taken every few
seconds, and after a broker error, never per record. A consumer's look costs no request at all
beyond the metadata and fetches it makes anyway.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.errors import (
    AuthorizationError,
    KafkaError,
    KafkaTimeoutError,
    OffsetOutOfRangeError,
    UnsupportedVersionError,
)
from kafka.structs import TopicPartition
from sqlalchemy.orm import Session

from shared.db import utcnow
from shared.events.broker import KafkaCluster, admin_options, close_quietly, consumer_options

log = logging.getLogger(__name__)

# Bounded, like every broker wait: a look that cannot finish in time is tried again later.
LOOK_TIMEOUT_SECONDS = 3.0

# What the relay is called in ``broker_topics`` (a consumer goes by its group's name).
RELAY_READER = "relay"


class TopicMissing(KafkaError):  # type: ignore[misc]  # kafka-python is untyped
    """A topic this reader uses does not exist on the broker (any more)."""


class LookInterrupted(Exception):
    """A stop was requested between two requests of a look: it is left unfinished."""


def _carry_on() -> None:
    pass


@dataclasses.dataclass(frozen=True)
class PartitionView:
    """What the broker says of one partition now."""

    topic: str
    partition: int
    # The high watermark (one past the last record), when known.
    end_offset: int | None
    topic_id: str | None
    cluster_id: str | None

    @property
    def key(self) -> tuple[str, int]:
        return (self.topic, self.partition)


@dataclasses.dataclass(frozen=True)
class SeenIds:
    """The cluster and topic ids a reader recorded for a partition."""

    cluster_id: str | None
    topic_id: str | None


class LossReason(enum.StrEnum):
    # The topic, or the whole cluster, is not the one the offsets were given by.
    TOPIC_RECREATED = "topic_recreated"
    CLUSTER_CHANGED = "cluster_changed"
    # The partition ends at or before an offset the broker gave out (or a consumer's position).
    LOG_TRUNCATED = "log_truncated"
    # Another record is where the broker said it wrote one: the log was cut and written again.
    LOG_REWRITTEN = "log_rewritten"


@dataclasses.dataclass(frozen=True)
class Loss:
    """Records of ``topic``/``partition`` the broker no longer holds, from ``from_offset`` on."""

    topic: str
    partition: int
    from_offset: int
    reason: LossReason

    @property
    def key(self) -> tuple[str, int]:
        return (self.topic, self.partition)


@dataclasses.dataclass(frozen=True)
class LastAcknowledged:
    """The last record the broker acknowledged in a partition: its offset and event id."""

    offset: int
    event_id: str


@dataclasses.dataclass(frozen=True)
class Tail:
    """What the broker holds at an acknowledged offset: where the partition ends (None: it did not
    say) and the event id of the record there (None: there is none). ``aged_out``: the partition's
    log now starts after the offset, as retention deletes old records: nothing was lost."""

    end_offset: int | None
    event_id: str | None
    aged_out: bool = False


def _changed(seen: SeenIds | None, view: PartitionView) -> LossReason | None:
    """Whether the ids the broker gives now differ from those seen before (an unknown id on either
    side proves nothing)."""
    if seen is None:
        return None
    if seen.cluster_id and view.cluster_id and seen.cluster_id != view.cluster_id:
        return LossReason.CLUSTER_CHANGED
    if seen.topic_id and view.topic_id and seen.topic_id != view.topic_id:
        return LossReason.TOPIC_RECREATED
    return None


def published_losses(
    views: Iterable[PartitionView],
    seen: Mapping[tuple[str, int], SeenIds],
    acknowledged: Mapping[tuple[str, int], LastAcknowledged],
    tails: Mapping[tuple[str, int], Tail],
) -> list[Loss]:
    """What a producer's acknowledged records the broker has lost, per partition.

    ``acknowledged``: the last record acknowledged in each partition; ``tails``: what the broker
    holds at that offset now. A changed id, or another record at that offset, loses the whole
    partition; a partition that ends at or before it loses the records from its end on.
    """
    losses = []
    for view in views:
        reason = _changed(seen.get(view.key), view)
        if reason is not None:
            losses.append(Loss(view.topic, view.partition, 0, reason))
            continue
        last, tail = acknowledged.get(view.key), tails.get(view.key)
        if last is None or tail is None or tail.aged_out or tail.event_id == last.event_id:
            continue
        if tail.event_id is None and tail.end_offset is not None and tail.end_offset <= last.offset:
            losses.append(Loss(view.topic, view.partition, tail.end_offset, LossReason.LOG_TRUNCATED))
        else:
            losses.append(Loss(view.topic, view.partition, 0, LossReason.LOG_REWRITTEN))
    return losses


def positions_to_rewind(
    views: Iterable[PartitionView],
    seen: Mapping[tuple[str, int], SeenIds],
    positions: Mapping[tuple[str, int], int],
) -> list[Loss]:
    """The partitions a consumer must read again from the start, and why.

    A consumer's position (or the offset its group committed) beyond the partition's end means the
    log it was reading is gone; the records there now, and those the relay publishes again, come
    after an end it has already passed and would be skipped. Going back to the beginning of what
    the broker holds now reads them all (the inbox skips those applied already). Likewise for a
    topic whose id changed, wherever the position is.
    """
    rewinds = []
    for view in views:
        reason = _changed(seen.get(view.key), view)
        position = positions.get(view.key)
        if (
            reason is None
            and position is not None
            and view.end_offset is not None
            and position > view.end_offset
        ):
            reason = LossReason.LOG_TRUNCATED
        if reason is not None:
            rewinds.append(Loss(view.topic, view.partition, 0, reason))
    return rewinds


# -- what the broker says ------------------------------------------------------------------------


def _topic_id(value: Any) -> str | None:
    # The null UUID is what a broker without topic ids answers.
    text = str(value) if value else ""
    return text if text and text != "00000000-0000-0000-0000-000000000000" else None


def partitions_with_admin(
    admin: Any, topics: Iterable[str], between: Callable[[], None] = _carry_on
) -> list[PartitionView]:
    """The partitions of ``topics`` and their ids, as the cluster's metadata gives them now (the
    end offsets are not asked: see ``tails_with_consumer``).

    Raises ``TopicMissing`` for a topic the broker does not have, and the client's errors when the
    broker cannot be asked. ``between`` runs between the two requests (it may raise to stop).
    """
    topics = list(topics)
    try:
        cluster_id = admin.describe_cluster().get("cluster_id")
    except (AuthorizationError, UnsupportedVersionError):
        # Describing the cluster may need a permission a relay is not given: the topic ids and
        # the records still tell a loss.
        cluster_id = None
    between()
    described = {item["name"]: item for item in admin.describe_topics(topics)}
    missing = [
        topic
        for topic in topics
        if topic not in described
        or described[topic].get("error_code")
        or not described[topic].get("partitions")
    ]
    if missing:
        raise TopicMissing(f"not on the broker: {', '.join(missing)}")
    return [
        PartitionView(
            topic, partition["partition_index"], None, _topic_id(described[topic].get("topic_id")), cluster_id
        )
        for topic in topics
        for partition in described[topic]["partitions"]
    ]


def tails_with_consumer(
    reader: Any,
    offsets: Mapping[tuple[str, int], int],
    timeout_seconds: float = LOOK_TIMEOUT_SECONDS,
    between: Callable[[], None] = _carry_on,
) -> dict[tuple[str, int], Tail]:
    """Fetch the record at each ``(topic, partition) -> offset`` with ``reader``, a consumer of no
    group that resets no offset (``auto_offset_reset="none"``): what is there and where the
    partition ends. Raises ``KafkaTimeoutError`` when the broker does not answer for every
    partition in time. ``between`` runs before each poll (it may raise to stop)."""
    wanted = {TopicPartition(topic, partition): offset for (topic, partition), offset in offsets.items()}
    if not wanted:
        return {}
    reader.assign(list(wanted))
    for tp, offset in wanted.items():
        reader.seek(tp, offset)
    tails: dict[tuple[str, int], Tail] = {}
    deadline = time.monotonic() + timeout_seconds
    while len(tails) < len(wanted):
        between()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KafkaTimeoutError(f"no answer in time for {sorted(set(offsets) - set(tails))}")
        try:
            fetched = reader.poll(timeout_ms=int(min(remaining, 0.5) * 1000))
        except OffsetOutOfRangeError as error:
            # A broker that says so (Kafka does): the offset is outside the log, after its end
            # (records lost) or before its start (deleted by retention, which loses nothing).
            out = list(error.args[0] if error.args and isinstance(error.args[0], dict) else wanted)
            tails.update(_out_of_range(reader, {tp: wanted[tp] for tp in out}, deadline))
            for tp in out:
                reader.pause(tp)
            continue
        for tp, records in fetched.items():
            for record in records:
                if record.offset == wanted[tp]:
                    tails[(tp.topic, tp.partition)] = Tail(reader.highwater(tp), _event_id(record))
                    reader.pause(tp)
        for tp, offset in wanted.items():
            key = (tp.topic, tp.partition)
            end = reader.highwater(tp)
            if key not in tails and end is not None and end <= offset:
                # The broker answered: the partition ends before the offset (the embedded broker
                # says so this way, with no error).
                tails[key] = Tail(end, None)
                reader.pause(tp)
    return tails


def _out_of_range(reader: Any, offsets: Mapping[Any, int], deadline: float) -> dict[tuple[str, int], Tail]:
    """Where each partition whose offset the broker called out of range starts and ends now
    (ListOffsets: a broker that raises out-of-range answers it truthfully)."""
    timeout_ms = max(int((deadline - time.monotonic()) * 1000), 100)
    starts = reader.beginning_offsets(list(offsets), timeout_ms=timeout_ms)
    ends = reader.end_offsets(list(offsets), timeout_ms=timeout_ms)
    return {
        (tp.topic, tp.partition): Tail(
            ends.get(tp), None, aged_out=starts.get(tp) is not None and offset < starts[tp]
        )
        for tp, offset in offsets.items()
    }


class KafkaBrokerLook:
    """How the relay asks the broker: an admin client for the topics' ids, and a consumer of no
    group to read back the last records it was acknowledged. Both are made for each look and
    closed after it (a look every few seconds; no state to go stale between two). Every wait is
    bounded by ``timeout_seconds``, and ``stopping`` is asked between two: a stop request cuts a
    look short (``LookInterrupted``) within one wait."""

    def __init__(
        self,
        kafka: KafkaCluster,
        timeout_seconds: float = LOOK_TIMEOUT_SECONDS,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.kafka = kafka
        self.timeout_seconds = timeout_seconds
        self.stopping = stopping

    def _between(self) -> None:
        if self.stopping():
            raise LookInterrupted

    def partitions(self, topics: list[str]) -> list[PartitionView]:
        admin = KafkaAdminClient(**admin_options(self.kafka, self.timeout_seconds))
        try:
            self._between()
            return partitions_with_admin(admin, topics, self._between)
        finally:
            close_quietly(admin)

    def tails(self, offsets: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], Tail]:
        if not offsets:
            return {}
        wait_ms = int(self.timeout_seconds * 1000)
        reader = KafkaConsumer(
            **{
                **consumer_options(self.kafka, None),
                "auto_offset_reset": "none",
                "bootstrap_timeout_ms": wait_ms,
                "request_timeout_ms": max(wait_ms, 1000),
                "fetch_max_wait_ms": 100,
            }
        )
        try:
            self._between()
            return tails_with_consumer(reader, offsets, self.timeout_seconds, self._between)
        finally:
            close_quietly(reader)


def _event_id(record: Any) -> str | None:
    for name, value in record.headers or ():
        if name == "event_id":
            return bytes(value).decode(errors="replace")
    return None


def partitions_with_consumer(consumer: Any, partitions: Iterable[Any]) -> list[PartitionView]:
    """The given assigned partitions as a consumer sees them from what it fetches anyway: where
    each ends (the high watermark of its last fetch response; None before one) and the topic and
    cluster ids from the metadata it refreshes every ``metadata_max_age_ms``. kafka-python keeps
    the ids on its cluster metadata, which its public API does not expose; without it, only
    offsets are compared."""
    cluster: Any = getattr(consumer, "_cluster", None)
    cluster_id = getattr(cluster, "cluster_id", None)
    views = []
    for tp in partitions:
        topic_id = (
            cluster.topic_id(tp.topic) if cluster is not None and hasattr(cluster, "topic_id") else None
        )
        views.append(
            PartitionView(tp.topic, tp.partition, consumer.highwater(tp), _topic_id(topic_id), cluster_id)
        )
    return views


# -- what a reader saw before ----------------------------------------------------------------------


def seen_ids(
    session: Session, model: Any, reader: str, topics: Iterable[str], *, lock: bool = False
) -> dict[tuple[str, int], SeenIds]:
    """The ids ``reader`` recorded for the partitions of ``topics``; ``lock``: and hold them until
    the transaction ends, so two relays of one service never both act on the same loss."""
    query = sa.select(model).where(model.reader == reader, model.topic.in_(list(topics)))
    if lock:
        query = query.with_for_update()
    rows = session.scalars(query)
    return {(row.topic, row.partition): SeenIds(row.cluster_id, row.topic_id) for row in rows}


def seen_after(before: SeenIds | None, view: PartitionView) -> SeenIds:
    """What to remember of a partition after ``view``: its ids, or, for an id the broker did not
    give this time, the one seen before (it is not forgotten)."""
    if before is None:
        return SeenIds(view.cluster_id, view.topic_id)
    return SeenIds(view.cluster_id or before.cluster_id, view.topic_id or before.topic_id)


def record_ids(
    session: Session,
    model: Any,
    reader: str,
    views: Iterable[PartitionView],
    seen: Mapping[tuple[str, int], SeenIds],
) -> None:
    """Remember the ids the broker gives now, where they are new (one write per change, none
    while nothing changes)."""
    now = utcnow()
    for view in views:
        before = seen.get(view.key)
        if before is None:
            session.add(
                model(
                    reader=reader,
                    topic=view.topic,
                    partition=view.partition,
                    cluster_id=view.cluster_id,
                    topic_id=view.topic_id,
                    seen_at=now,
                )
            )
            continue
        now_seen = seen_after(before, view)
        if now_seen != before:
            session.execute(
                sa.update(model)
                .where(model.reader == reader, model.topic == view.topic, model.partition == view.partition)
                .values(cluster_id=now_seen.cluster_id, topic_id=now_seen.topic_id, seen_at=now)
            )
