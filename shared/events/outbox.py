"""The transactional outbox and the inbox.

A service declares ``class OutboxMessage(OutboxMixin, Base)`` and ``class InboxMessage(InboxMixin,
Base)`` on its own declarative base. ``write_to_outbox`` is what a unit of work calls, inside the
transaction that carries the state change.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

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


class InboxMixin:
    """Events a consumer has applied. Written in the same transaction as the effect."""

    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    event_type: Mapped[str] = mapped_column(sa.String(120))
    processed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


def outbox_writer(model: type, topic: str) -> Callable[[Session, Event], None]:
    """Return the function a unit of work uses to persist one event in its transaction."""

    def write(session: Session, event: Event) -> None:
        session.add(
            model(
                event_id=event.id,
                event_type=event.type,
                topic=topic,
                key=event.key,
                payload=json.dumps(event.envelope(), separators=(",", ":"), ensure_ascii=False),
            )
        )

    return write


def outbox_backlog(session: Session, model: Any) -> int:
    return (
        session.scalar(sa.select(sa.func.count()).select_from(model).where(model.published_at.is_(None))) or 0
    )
