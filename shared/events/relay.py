"""The outbox relay: publishes outbox rows to Kafka (acks=all, idempotent) and marks them sent.

Guarantees: at-least-once delivery (a crash between the broker's ack and our update resends the
row; consumers deduplicate by event id), and per-key order as long as one relay runs per service
database. On PostgreSQL a batch is claimed with ``FOR UPDATE SKIP LOCKED`` so extra relays never
publish the same row concurrently. When the broker is down, rows stay in the outbox and the relay
backs off exponentially (with jitter) until it returns.

A stop request (SIGTERM) is honoured within seconds whatever the broker does: every broker call
is bounded, the relay checks for the request between them, and rows it did not get to publish
simply stay in the outbox for the next start.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shared.db import is_postgres, utcnow
from shared.events.broker import KafkaCluster, as_cluster, close_quietly, ensure_topics, make_producer

log = logging.getLogger(__name__)

_STOPPING = "stopping"


@dataclasses.dataclass(frozen=True)
class PendingMessage:
    seq: int
    event_id: str
    event_type: str
    topic: str
    key: str
    payload: str


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
        max_backoff: float = 10.0,
        send_timeout: float = 5.0,
        producer_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.model = outbox_model
        # Every client the relay creates (its producer, the topic admin) reaches the cluster the
        # same way: TLS, SASL, and the topics' replication settings.
        self.kafka = as_cluster(kafka)
        self.topics = topics
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.send_timeout = send_timeout
        self._producer_factory = producer_factory or (
            lambda: make_producer(self.kafka, timeout_seconds=self.send_timeout)
        )
        self._producer: Any = None
        self._consecutive_failures = 0
        # Set by run(): a stop request cuts a batch short between broker calls.
        self._stop = threading.Event()

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
                session.execute(
                    sa.update(model)
                    .where(model.seq.in_([m.seq for m in sent]))
                    .values(published_at=now, last_error=None)
                )
            unsent = pending[len(sent) :]
            if error == _STOPPING:
                # Not a failure: the rows stay due, untouched, for whoever runs next.
                session.commit()
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
        if error:
            log.warning(
                "outbox publish failed; will retry",
                extra={"unsent": len(unsent), "error": error},
            )
        return BatchResult(published=len(sent), failed=len(unsent), error=error)

    def _send(self, pending: list[PendingMessage]) -> tuple[list[PendingMessage], str | None]:
        """Send in order; return the prefix that the broker acknowledged and the first error."""
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
        sent: list[PendingMessage] = []
        for message, future in zip(pending, futures, strict=True):
            try:
                future.get(timeout=self.send_timeout)
            except Exception as exc:  # noqa: BLE001
                self._drop_producer()
                return sent, f"{type(exc).__name__}: {exc}"
            sent.append(message)
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

    def _backoff_seconds(self) -> float:
        base = min(self.max_backoff, 0.5 * 2 ** min(self._consecutive_failures, 10))
        return random.uniform(base / 2, base)

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        log.info("outbox relay started", extra={"topics": self.topics})
        while not stop.is_set():
            try:
                result = self.publish_batch()
            except Exception:  # noqa: BLE001 - e.g. database briefly unreachable
                log.exception("outbox relay batch failed")
                result = BatchResult(error="batch failed")
            if result.error:
                self._consecutive_failures += 1
                stop.wait(self._backoff_seconds())
            else:
                self._consecutive_failures = 0
                if result.published < self.batch_size:
                    stop.wait(self.poll_interval)
        self._drop_producer()
        log.info("outbox relay stopped")


class _Stopping(Exception):
    """Internal: a stop was requested between two broker calls; the batch stays in the outbox."""
