"""Operator replay: republish outbox events created in a time range.

Events keep their ids, so consumers that already applied them skip them (inbox); a consumer
rebuilt from scratch, or a bank partner re-reading the ledger topic, gets them again in order.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)


def replay_outbox(
    *,
    session_factory: sessionmaker[Session],
    outbox_model: Any,
    producer: Any,
    since: dt.datetime,
    until: dt.datetime,
    event_type: str | None = None,
    timeout_seconds: float = 10.0,
    batch_size: int = 500,
) -> int:
    """Republish every outbox row with ``since <= created_at < until``; return how many."""
    model = outbox_model
    count = 0
    last_seq = 0
    while True:
        with session_factory() as session:
            query = (
                sa.select(model.seq, model.topic, model.key, model.payload, model.event_id, model.event_type)
                .where(model.created_at >= since, model.created_at < until, model.seq > last_seq)
                .order_by(model.seq)
                .limit(batch_size)
            )
            if event_type:
                query = query.where(model.event_type == event_type)
            rows = session.execute(query).all()
            session.commit()
        if not rows:
            break
        futures = [
            producer.send(
                row.topic,
                key=row.key.encode(),
                value=row.payload.encode(),
                headers=[
                    ("event_id", row.event_id.encode()),
                    ("event_type", row.event_type.encode()),
                    ("replayed", b"true"),
                ],
            )
            for row in rows
        ]
        for future in futures:
            future.get(timeout=timeout_seconds)
        count += len(rows)
        last_seq = rows[-1].seq
    log.info("replayed outbox events", extra={"count": count, "since": since, "until": until})
    return count
