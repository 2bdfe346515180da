"""The outbox relay: publishes outbox rows to Kafka (acks=all, idempotent) and marks them sent.

Guarantees: at-least-once delivery (a crash between the broker's ack and our update resends the
row; consumers deduplicate by event id), and per-key order as long as one relay runs per service
database. On PostgreSQL a batch is claimed with ``FOR UPDATE SKIP LOCKED`` so extra relays never
publish the same row concurrently. When the broker is down, rows stay in the outbox and the relay
backs off exponentially (with jitter) until it returns.

A stop request (SIGTERM) is honoured within seconds whatever the broker does: every broker call
is bounded, the relay checks for the request between them, and rows it did not get to publish
simply stay in the outbox for the next start.

What the broker acknowledged and then lost is not lost (``lost_records``). The relay records on
each row the partition and offset the broker acknowledged it at. Every ``loss_check_interval``
seconds, and before publishing again after any broker error (a restart shows as one), it asks the
broker for its topic and cluster ids and reads back the last record it was acknowledged in each
partition. A topic made anew (another id), or another record at that offset, loses every row
published there; a partition that now ends at or before that offset loses the rows from its end
on. Those rows go back to unpublished, in the same transaction that records the
new ids, and the relay publishes them again in their original order; consumers' inboxes turn the
ones they had applied into no-ops. Until the broker has been asked, nothing new is published, so
events published again keep their order before newer ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from kafka.errors import KafkaError
from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared import tracing
from shared.db import is_postgres, utcnow
from shared.events.broker import KafkaCluster, as_cluster, close_quietly, ensure_topics, make_producer
from shared.events.lost_records import (
    RELAY_READER,
    KafkaBrokerLook,
    LastAcknowledged,
    LookInterrupted,
    Loss,
    LossReason,
    PartitionView,
    TopicMissing,
    published_losses,
    record_ids,
    seen_ids,
)

log = logging.getLogger(__name__)

PUBLISHED = Counter(
    "hirfa_relay_published_events_total",
    "Outbox events the broker acknowledged and the relay marked sent",
    ["topic"],
)
REPUBLISHED = Counter(
    "hirfa_relay_republished_events_total",
    "Outbox events published again because the broker lost them after acknowledging them",
    ["topic", "reason"],
)

_STOPPING = "stopping"


@dataclasses.dataclass(frozen=True)
class PendingMessage:
    seq: int
    event_id: str
    event_type: str
    topic: str
    key: str
    payload: str


@dataclasses.dataclass(frozen=True)
class Acknowledged:
    """A message the broker acknowledged, and where it wrote it (None: it did not say)."""

    message: PendingMessage
    partition: int | None
    offset: int | None


@dataclasses.dataclass
class BatchResult:
    published: int = 0
    failed: int = 0
    error: str | None = None


class OutboxRelay:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        outbox_model: Any,
        kafka: KafkaCluster | str,
        topics: list[str],
        batch_size: int = 100,
        poll_interval: float = 0.2,
        busy_poll_interval: float = 0.02,
        max_backoff: float = 10.0,
        send_timeout: float = 5.0,
        producer_factory: Callable[[], Any] | None = None,
        topic_model: Any = None,
        watched_topics: list[str] | None = None,
        loss_check_interval: float = 30.0,
        broker_look: Any = None,
    ) -> None:
        self.session_factory = session_factory
        self.model = outbox_model
        # Every client the relay creates (its producer, the topic admin) reaches the cluster the
        # same way: TLS, SASL, and the topics' replication settings.
        self.kafka = as_cluster(kafka)
        self.topics = topics
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        # After a batch that published rows but did not fill up: events are arriving, and waiting
        # the whole poll interval for the next ones would add it to each one's way to the
        # consumers. An idle relay still asks only every ``poll_interval``.
        self.busy_poll_interval = busy_poll_interval
        self.max_backoff = max_backoff
        self.send_timeout = send_timeout
        self._producer_factory = producer_factory or (
            lambda: make_producer(self.kafka, timeout_seconds=self.send_timeout)
        )
        self._producer: Any = None
        self._consecutive_failures = 0
        # Set by run(): a stop request cuts a batch short between broker calls.
        self._stop = threading.Event()
        # Lost records: the topics the outbox publishes to (not the dead-letter topic, which it
        # only creates), where their ids are kept, and how often the broker is asked. Without a
        # model the relay does not look (a test's relay, say).
        self.topic_model = topic_model
        self.watched_topics = watched_topics if watched_topics is not None else topics[:1]
        self.loss_check_interval = loss_check_interval
        # Asks the broker its topics' ids and reads back acknowledged records (KafkaBrokerLook).
        self.broker_look = broker_look or KafkaBrokerLook(self.kafka, stopping=lambda: self._stop.is_set())
        # Asked before the first batch, and again before publishing after any broker error.
        self._check_due_at = 0.0

    # -- one batch ---------------------------------------------------------------------------

    def publish_batch(self) -> BatchResult:
        """Publish up to ``batch_size`` due rows, in insertion order. Returns what happened."""
        model = self.model
        with self.session_factory() as session:
            query = (
                sa.select(model)
                .where(model.published_at.is_(None), model.available_at <= utcnow())
                .order_by(model.seq)
                .limit(self.batch_size)
            )
            postgres = is_postgres(session)
            if postgres:
                query = query.with_for_update(skip_locked=True)
            pending = [
                PendingMessage(r.seq, r.event_id, r.event_type, r.topic, r.key, r.payload)
                for r in session.scalars(query)
            ]
            if not pending:
                session.commit()
                return BatchResult()
            if not postgres:
                # SQLite locks the whole file: never hold it across network I/O.
                session.commit()
            sent, error = self._send(pending)
            now = utcnow()
            if sent:
                # One statement, run for every row (the positions differ from row to row).
                session.execute(
                    sa.update(model),
                    [
                        {
                            "seq": ack.message.seq,
                            "published_at": now,
                            "last_error": None,
                            "broker_partition": ack.partition,
                            "broker_offset": ack.offset,
                        }
                        for ack in sent
                    ],
                )
            unsent = pending[len(sent) :]
            if error == _STOPPING:
                # Not a failure: the rows stay due, untouched, for whoever runs next.
                session.commit()
                _count_published(sent)
                return BatchResult(published=len(sent))
            if unsent:
                retry_at = now + dt.timedelta(seconds=self._backoff_seconds())
                session.execute(
                    sa.update(model)
                    .where(model.seq.in_([m.seq for m in unsent]))
                    .values(
                        attempts=model.attempts + 1,
                        last_error=(error or "unknown error")[:2000],
                        available_at=retry_at,
                    )
                )
            session.commit()
        _count_published(sent)
        if error:
            log.warning(
                "outbox publish failed; will retry",
                extra={"unsent": len(unsent), "error": error},
            )
        return BatchResult(published=len(sent), failed=len(unsent), error=error)

    def _send(self, pending: list[PendingMessage]) -> tuple[list[Acknowledged], str | None]:
        """Send in order; return the prefix that the broker acknowledged and the first error.

        Traced, each event's publication is a span in the trace the event was created in."""
        chosen = tracing.tracer()
        if chosen is None:
            return self._send_to_broker(pending)
        spans = [
            tracing.start_sending(
                chosen, message.event_type, message.event_id, message.topic, _traceparent(message.payload)
            )
            for message in pending
        ]
        sent: list[Acknowledged] = []
        error: str | None = "relay failed"
        try:
            sent, error = self._send_to_broker(pending)
        finally:
            # Rows left for the next start by a stop request did not fail.
            tracing.finish_sending(spans, len(sent), None if error == _STOPPING else error)
        return sent, error

    def _send_to_broker(self, pending: list[PendingMessage]) -> tuple[list[Acknowledged], str | None]:
        try:
            producer = self._ensure_producer()
            if self._stop.is_set():
                return [], _STOPPING
            futures = [
                producer.send(
                    message.topic,
                    key=message.key.encode(),
                    value=message.payload.encode(),
                    headers=[
                        ("event_id", message.event_id.encode()),
                        ("event_type", message.event_type.encode()),
                    ],
                )
                for message in pending
            ]
            producer.flush(timeout=self.send_timeout)
        except _Stopping:
            return [], _STOPPING
        except Exception as exc:  # noqa: BLE001 - any client failure means "broker unavailable"
            self._drop_producer()
            return [], f"{type(exc).__name__}: {exc}"
        sent: list[Acknowledged] = []
        for message, future in zip(pending, futures, strict=True):
            try:
                metadata = future.get(timeout=self.send_timeout)
            except Exception as exc:  # noqa: BLE001
                self._drop_producer()
                return sent, f"{type(exc).__name__}: {exc}"
            sent.append(
                Acknowledged(message, getattr(metadata, "partition", None), getattr(metadata, "offset", None))
            )
        return sent, None

    def _ensure_producer(self) -> Any:
        if self._producer is None:
            # A broker restarted on memory storage has lost its topics: recreate them first.
            ensure_topics(self.kafka, self.topics, timeout_seconds=self.send_timeout)
            if self._stop.is_set():
                raise _Stopping
            self._producer = self._producer_factory()
        return self._producer

    def _drop_producer(self) -> None:
        if self._producer is not None:
            close_quietly(self._producer)
        self._producer = None
        # A broker error may be the broker coming back empty: ask it before publishing again.
        self._check_due_at = 0.0

    # -- records the broker lost -------------------------------------------------------------

    @property
    def watches_for_losses(self) -> bool:
        return self.topic_model is not None and bool(self.watched_topics)

    def check_due(self) -> bool:
        return self.watches_for_losses and time.monotonic() >= self._check_due_at

    def republish_lost(self) -> int:
        """Ask the broker what it holds of the watched topics; put every row it lost back to
        unpublished, and remember the ids it gives now. Returns how many rows go out again.

        Raises the client's error when the broker cannot be asked (the caller backs off and asks
        again before publishing anything).
        """
        try:
            views = self.broker_look.partitions(self.watched_topics)
        except TopicMissing:
            # A broker that lost everything has lost the topics too: the relay owns its topic.
            ensure_topics(self.kafka, self.topics, timeout_seconds=self.send_timeout)
            views = self.broker_look.partitions(self.watched_topics)
        with self.session_factory() as session:
            acknowledged = {
                view.key: last
                for view in views
                if (last := self._last_acknowledged(session, view)) is not None
            }
            session.commit()
        # The broker is asked outside any transaction: no lock waits on the network.
        tails = self.broker_look.tails({key: last.offset for key, last in acknowledged.items()})
        with self.session_factory() as session:
            # Locked (PostgreSQL): a second relay waits, then finds the new ids and no loss.
            seen = seen_ids(
                session, self.topic_model, RELAY_READER, self.watched_topics, lock=is_postgres(session)
            )
            losses = published_losses(views, seen, acknowledged, tails)
            republished = sum(self._unpublish(session, loss) for loss in losses)
            record_ids(session, self.topic_model, RELAY_READER, views, seen)
            try:
                session.commit()
            except IntegrityError:
                # Another relay recorded these partitions first; it acts on what it found.
                session.rollback()
                return 0
        for loss in losses:
            log.warning(
                "the broker lost published events; publishing them again",
                extra={
                    "topic": loss.topic,
                    "partition": loss.partition,
                    "from_offset": loss.from_offset,
                    "reason": str(loss.reason),
                },
            )
        if losses:
            # Its idempotence state (producer id, sequence numbers) belongs to the log that is gone.
            self._drop_producer()
        if republished:
            log.warning("outbox events to publish again", extra={"count": republished})
        self._check_due_at = time.monotonic() + self.loss_check_interval
        return republished

    def _last_acknowledged(self, session: Session, view: PartitionView) -> LastAcknowledged | None:
        """The row the broker acknowledged last in the partition (two index lookups)."""
        model = self.model
        # ``broker_offset IS NOT NULL`` says outright what the offset's index holds (its rows only),
        # so every database serves the question from it: SQLite does not infer it from ``max``.
        in_partition = (
            (model.topic == view.topic)
            & (model.broker_partition == view.partition)
            & model.broker_offset.is_not(None)
        )
        highest = session.scalar(sa.select(sa.func.max(model.broker_offset)).where(in_partition))
        if highest is None:
            return None
        event_id = session.scalar(
            sa.select(model.event_id).where(in_partition, model.broker_offset == highest).limit(1)
        )
        return LastAcknowledged(int(highest), str(event_id))

    def _unpublish(self, session: Session, loss: Loss) -> int:
        """Make the rows ``loss`` covers due again; how many. A topic made anew has lost every row
        published to it, those published before positions were recorded too."""
        model = self.model
        lost = model.published_at.is_not(None) & (model.topic == loss.topic)
        if loss.reason is LossReason.LOG_TRUNCATED:
            lost &= (model.broker_partition == loss.partition) & (model.broker_offset >= loss.from_offset)
        elif loss.reason is LossReason.LOG_REWRITTEN:
            # Partition and offset are recorded and cleared together, so the rows with one are the
            # rows with the other: the offset's index finds them.
            lost &= (model.broker_partition == loss.partition) & model.broker_offset.is_not(None)
        # (A topic made anew reports each of its partitions: the first takes every row, the next
        # find none left.)
        result = session.execute(
            sa.update(model)
            .where(lost)
            .values(published_at=None, broker_partition=None, broker_offset=None, available_at=utcnow())
        )
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            REPUBLISHED.labels(loss.topic, str(loss.reason)).inc(count)
        return count

    def _backoff_seconds(self) -> float:
        base = min(self.max_backoff, 0.5 * 2 ** min(self._consecutive_failures, 10))
        return random.uniform(base / 2, base)

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, heartbeat: Callable[[], None] | None = None) -> None:
        """Publish until ``stop`` is set; ``heartbeat`` is called at every turn of the loop."""
        self._stop = stop
        log.info("outbox relay started", extra={"topics": self.topics})
        while not stop.is_set():
            if heartbeat is not None:
                heartbeat()
            try:
                if self.check_due():
                    self.republish_lost()
                result = self.publish_batch()
            except LookInterrupted:
                break  # a stop request: nothing was changed, the next start looks again
            except KafkaError as exc:
                # The broker could not say what it holds (it is down, or starting): nothing is
                # published until it has.
                log.warning("could not ask the broker what it holds; will retry", extra={"error": repr(exc)})
                result = BatchResult(error=type(exc).__name__)
            except Exception:  # noqa: BLE001 - e.g. database briefly unreachable
                log.exception("outbox relay batch failed")
                result = BatchResult(error="batch failed")
            if result.error:
                self._consecutive_failures += 1
                stop.wait(self._backoff_seconds())
            else:
                self._consecutive_failures = 0
                if not result.published:
                    stop.wait(self.poll_interval)
                elif result.published < self.batch_size:
                    stop.wait(min(self.busy_poll_interval, self.poll_interval))
        self._drop_producer()
        log.info("outbox relay stopped")


def _traceparent(payload: str) -> str | None:
    """The ``traceparent`` an outbox row's envelope carries, if any (read only while tracing)."""
    try:
        found = orjson.loads(payload).get(tracing.TRACEPARENT)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _count_published(sent: list[Acknowledged]) -> None:
    for topic in {ack.message.topic for ack in sent}:
        PUBLISHED.labels(topic).inc(sum(1 for ack in sent if ack.message.topic == topic))


class _Stopping(Exception):
    """Internal: a stop was requested between two broker calls; the batch stays in the outbox."""
