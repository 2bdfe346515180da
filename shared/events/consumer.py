"""The consumer runner: applies events exactly once to a service's database.

For each message: decode and validate the envelope (consumer-side schema check), then in ONE
database transaction check the inbox, run the handler, record the event id in the inbox, commit;
only then commit the Kafka offset. A crash between the two commits redelivers the message, and the
inbox turns the redelivery into a no-op.

A message that can never be applied (bad JSON, schema violation, a handler that keeps failing on
it) is a poison message: it goes to the service's dead-letter topic with the error, its offset is
committed, and processing continues. A database outage is not poison: the runner rewinds to the
message and retries with backoff, forever.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc as sa_exc
from kafka.structs import OffsetAndMetadata, TopicPartition

from shared.db import UnitOfWork
from shared.events.envelope import Event
from shared.events.schemas import EventSchemaError, validate_event

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, Event], None]

# Exit code used by the test-only fault injection, so a test can tell it from a real crash.
FAULT_EXIT_CODE = 70


class PoisonMessage(Exception):
    """The message can never be applied; it belongs in the dead-letter topic."""


class EventConsumer:
    def __init__(
        self,
        *,
        name: str,
        handlers: dict[str, Handler],
        uow_factory: Callable[[], UnitOfWork],
        inbox_model: Any,
        consumer_factory: Callable[[], Any],
        producer_factory: Callable[[], Any],
        dead_letter_topic: str,
        max_attempts: int = 3,
        fault_injection: str = "",
    ) -> None:
        self.name = name
        self.handlers = handlers
        self.uow_factory = uow_factory
        self.inbox_model = inbox_model
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self.dead_letter_topic = dead_letter_topic
        self.max_attempts = max_attempts
        self.fault_injection = fault_injection
        self._consumer: Any = None
        self._producer: Any = None
        self._failures: dict[tuple[str, int, int], int] = {}

    # -- applying one event --------------------------------------------------------------

    def decode(self, value: bytes, key: bytes | None) -> Event:
        try:
            envelope = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PoisonMessage(f"not JSON: {exc}") from None
        try:
            validate_event(envelope)
        except EventSchemaError as exc:
            raise PoisonMessage(f"schema violation: {exc}") from None
        except (TypeError, KeyError) as exc:
            raise PoisonMessage(f"not an event envelope: {exc}") from None
        return Event.from_envelope(envelope, key=(key or b"").decode(errors="replace"))

    def apply(self, event: Event) -> bool:
        """Apply ``event`` once. Returns False when it was already applied (or is not ours)."""
        handler = self.handlers.get(event.type)
        if handler is None:
            return False  # other services' event types share the topic; not for us
        with self.uow_factory() as uow:
            if uow.session.get(self.inbox_model, (self.name, event.id)) is not None:
                log.info("event already applied; skipped", extra={"event_id": event.id})
                return False
            handler(uow, event)
            uow.session.add(
                self.inbox_model(consumer=self.name, event_id=event.id, event_type=event.type)
            )
            try:
                uow.commit()
            except sa_exc.IntegrityError:
                # A concurrent consumer (during a rebalance) applied it first.
                uow.rollback()
                if uow.session.get(self.inbox_model, (self.name, event.id)) is not None:
                    return False
                raise
        return True

    # -- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        log.info("consumer started", extra={"consumer": self.name, "types": sorted(self.handlers)})
        backoff = 0.5
        while not stop.is_set():
            try:
                if self._consumer is None:
                    self._consumer = self._consumer_factory()
                batches = self._consumer.poll(timeout_ms=500)
                self._process_batches(batches, stop)
                backoff = 0.5
            except _Rewind as rewind:
                log.warning("retrying after transient failure", extra={"error": str(rewind)})
                stop.wait(random.uniform(backoff / 2, backoff))
                backoff = min(backoff * 2, 10.0)
            except Exception:  # noqa: BLE001 - broker gone etc.: rebuild the client and retry
                log.exception("consumer loop failed; reconnecting")
                self._close()
                stop.wait(random.uniform(backoff / 2, backoff))
                backoff = min(backoff * 2, 10.0)
        self._close()
        log.info("consumer stopped", extra={"consumer": self.name})

    def _process_batches(self, batches: dict[Any, list[Any]], stop: threading.Event) -> None:
        # The client's position is already past every record poll() returned; if we stop early,
        # rewind each partition to its first unprocessed record so nothing is skipped.
        next_offsets = {tp: records[0].offset for tp, records in batches.items() if records}
        try:
            for tp, records in batches.items():
                for record in records:
                    if stop.is_set():
                        return
                    self._process(record)
                    next_offsets[tp] = record.offset + 1
                next_offsets.pop(tp, None)
        except _Rewind:
            for tp, offset in next_offsets.items():
                self._consumer.seek(tp, offset)
            raise

    def _process(self, record: Any) -> None:
        position = (record.topic, record.partition, record.offset)
        try:
            event = self.decode(record.value, record.key)
            applied = self.apply(event)
            if applied:
                log.info("event applied", extra={"event_id": event.id, "event_type": event.type})
        except PoisonMessage as exc:
            self._dead_letter(record, str(exc))
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            # The database is unreachable: not the message's fault. Rewind and retry it.
            raise _Rewind(f"{type(exc).__name__}") from exc
        except Exception as exc:  # noqa: BLE001 - a handler bug or bad data
            attempts = self._failures.get(position, 0) + 1
            self._failures[position] = attempts
            log.exception("handler failed", extra={"attempt": attempts, "offset": record.offset})
            if attempts < self.max_attempts:
                raise _Rewind(f"{type(exc).__name__}") from exc
            self._dead_letter(record, f"{type(exc).__name__}: {exc}")
        self._failures.pop(position, None)
        if self.fault_injection == "crash_after_db_commit":
            # Test-only: die between the database commit and the offset commit.
            os._exit(FAULT_EXIT_CODE)
        self._commit_offset(record)

    def _commit_offset(self, record: Any) -> None:
        self._consumer.commit(
            {TopicPartition(record.topic, record.partition): OffsetAndMetadata(record.offset + 1, "", -1)}
        )

    def _dead_letter(self, record: Any, error: str) -> None:
        if self._producer is None:
            self._producer = self._producer_factory()
        headers = [
            ("error", error[:1000].encode()),
            ("original_topic", record.topic.encode()),
            ("original_partition", str(record.partition).encode()),
            ("original_offset", str(record.offset).encode()),
            ("consumer", self.name.encode()),
        ]
        self._producer.send(
            self.dead_letter_topic, key=record.key, value=record.value, headers=headers
        ).get(timeout=10)
        log.error(
            "poison message sent to dead-letter topic",
            extra={"topic": record.topic, "offset": record.offset, "error": error[:300]},
        )

    def _close(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001
                    pass
        self._consumer = None
        self._producer = None


class _Rewind(Exception):
    """Internal: stop this poll batch; the partition was rewound to the failed message."""
