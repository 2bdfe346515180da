"""The transactional outbox and the inbox.

A service declares ``class OutboxMessage(OutboxMixin, Base)``, ``class InboxMessage(InboxMixin,
Base)`` and ``class BrokerTopic(BrokerTopicMixin, Base)`` on its own declarative base. ``write_to_outbox`` is what a unit of work calls, inside the
transaction that carries the state change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from shared import tracing
from shared.bulk_sql import Same, insert_many
from shared.db import UTCDateTime, utcnow
from shared.events.envelope import Event


class OutboxMixin:
    """Events waiting to be published (``published_at`` null) and those already sent."""

    __tablename__ = "outbox"

    # Insertion order, used by the relay so one artisan's events leave in the order they happened.
    seq: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    event_type: Mapped[str] = mapped_column(sa.String(120))
    topic: Mapped[str] = mapped_column(sa.String(120))
    key: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Backoff: the relay leaves a row alone until this time after a failed send.
    available_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    # Where the broker says it wrote the event when it acknowledged it (a partition of ``topic``
    # and the offset there): the relay compares these with the broker's log to notice records the
    # broker has lost since, and republishes them. Null until published (and for rows published
    # before the relay recorded them).
    broker_partition: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    broker_offset: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        # The highest offset acknowledged in a partition, and the rows at or after an offset: one
        # index lookup each, however long the outbox. Only rows with an offset are indexed (the
        # relay's questions all say ``broker_offset IS NOT NULL``): a row is written without one, so writing it (every event a
        # service records) costs no entry here; the relay's update that records the position adds it.
        return (
            sa.Index(
                "ix_outbox_broker_position",
                "topic",
                "broker_partition",
                "broker_offset",
                postgresql_where=sa.text("broker_offset IS NOT NULL"),
                sqlite_where=sa.text("broker_offset IS NOT NULL"),
            ),
        )


class InboxMixin:
    """Events a consumer has applied. Written in the same transaction as the effect."""

    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    event_type: Mapped[str] = mapped_column(sa.String(120))
    processed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclasses.dataclass(frozen=True)
class OutboxWriter:
    """Persists one event in the caller's transaction (what a unit of work calls). ``model`` and
    ``topic`` also tell a set-based statement that writes many events at once where they go."""

    model: Any
    topic: str

    def __call__(self, session: Session, event: Event) -> None:
        session.add(
            self.model(
                event_id=event.id,
                event_type=event.type,
                topic=self.topic,
                key=event.key,
                payload=payload(self._traced(event)),
            )
        )

    def write_many(self, session: Session, events: Sequence[Event]) -> None:
        """Persist ``events`` in one statement, in order (their ``seq`` follows it), after whatever
        the session still holds back: the outbox's order is the order events were recorded in."""
        session.flush()
        now = utcnow()
        events = [self._traced(event) for event in events] if tracing.tracer() is not None else events
        insert_many(
            session,
            self.model.__table__,
            {
                "event_id": [event.id for event in events],
                "event_type": [event.type for event in events],
                "topic": Same(self.topic),
                "key": [event.key for event in events],
                "payload": [payload(event) for event in events],
                "created_at": Same(now),
                "available_at": Same(now),
                "attempts": Same(0),
            },
            len(events),
        )

    def _traced(self, event: Event) -> Event:
        """``event`` carrying the trace it is created in (a span of its own, child of the request or
        of the event being applied); as it is while tracing is off."""
        chosen = tracing.tracer()
        if chosen is None:
            return event
        return dataclasses.replace(event, traceparent=tracing.event_created(chosen, event, self.topic))


def payload(event: Event) -> str:
    """The outbox row's payload: the envelope as compact JSON, UTF-8 as it is (no ``\\u`` escapes).
    orjson writes exactly what ``json.dumps(…, separators=(",", ":"), ensure_ascii=False)`` would,
    in a twentieth of the time, and every event a service emits is encoded here."""
    return orjson.dumps(event.envelope()).decode()


class BrokerTopicMixin:
    """What a reader of the broker (the relay, a consumer group) last saw of each partition it
    uses: the ids of the cluster and of the topic. Another id later means the topic, or the whole
    cluster, was made anew: everything the old one held is gone, whatever its offsets say."""

    __tablename__ = "broker_topics"

    # ``relay`` for the service's outbox relay, the group name for a consumer.
    reader: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    topic: Mapped[str] = mapped_column(sa.String(120), primary_key=True)
    partition: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    cluster_id: Mapped[str | None] = mapped_column(sa.String(80), nullable=True)
    topic_id: Mapped[str | None] = mapped_column(sa.String(80), nullable=True)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


def outbox_writer(model: type, topic: str) -> OutboxWriter:
    """Return the function a unit of work uses to persist one event in its transaction."""
    return OutboxWriter(model, topic)


def outbox_backlog(session: Session, model: Any) -> int:
    return (
        session.scalar(sa.select(sa.func.count()).select_from(model).where(model.published_at.is_(None))) or 0
    )


def outbox_oldest_unpublished(session: Session, model: Any) -> dt.datetime | None:
    """When the oldest event not yet published was written (None: everything is published)."""
    oldest: dt.datetime | None = session.scalar(
        sa.select(sa.func.min(model.created_at)).where(model.published_at.is_(None))
    )
    return oldest
