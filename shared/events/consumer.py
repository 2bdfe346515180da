"""The consumer runner: applies events exactly once to a service's database.

Messages are applied in batches (``batch_size``, one poll): decode and validate each envelope
(consumer-side schema check), then in ONE database transaction, for each event: check the inbox,
run the handler inside a SAVEPOINT, write its outbox events and its inbox row inside that same
savepoint. Commit once; only then commit the Kafka offsets. A crash between the two commits
redelivers the batch, and the inbox turns every redelivered event into a no-op.

A handler that raises rolls back its own savepoint only: its batch-mates still commit, and it is
neither marked handled nor allowed to leave outbox events behind. Later events with the same key
(the same artisan) are held back in that batch so one subject's events keep their order. The
partition is rewound to the failed message, which is retried with backoff; after
``max_attempts`` failures it is a poison message and goes to the dead-letter topic.

A handler may also have a set-based form (``with_set_based_form``): two or more consecutive events
of its type in a batch are then applied together, in one savepoint, with one inbox statement and one outbox
statement for all of them, and the handler's own few statements for the lot. It must have exactly
the effect of the handler applied to each event in order. If it raises, its savepoint is rolled
back and those events are applied one at a time as above, so a poison message among them is found,
retried and dead-lettered alone while the others are applied.

A message that can never be applied (bad JSON, schema violation, a handler that keeps failing on
it) is a poison message: it goes to the service's dead-letter topic with the error, its offset is
committed, and processing continues. A database outage is not poison: the whole batch is rolled
back, the runner rewinds to each partition's first uncommitted message and retries with backoff,
forever.

While tracing is on (shared/tracing.py), each event is applied in a span that continues the trace
its envelope's ``traceparent`` names; a set-based run in one span linked to each of its events. A
malformed ``traceparent`` is dropped, never a reason to dead-letter the event.

A broker that lost records it had acknowledged (``lost_records``) leaves a consumer's position,
and its group's committed offsets, pointing into a log that is gone: a topic made anew, or cut
short, ends before them, and the records written there since (the relay publishes the lost ones
again) would be skipped until the log grew past the old position. The ``PositionGuard`` looks
every few seconds, after every rebalance and after a broker error: a partition whose topic id is
not the one seen before, or whose position two looks in a row find beyond its end, is read again
from its beginning (the inbox skips what was applied), and that new start is committed at once.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import sqlalchemy.exc as sa_exc
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import Counter, Gauge
from sqlalchemy.orm import Session, sessionmaker

from shared import tracing
from shared.bulk_sql import Same, insert_many, present
from shared.db import UnitOfWork, utcnow
from shared.events.broker import close_quietly
from shared.events.envelope import Event
from shared.events.lost_records import (
    LOOK_TIMEOUT_SECONDS,
    LossReason,
    SeenIds,
    partitions_with_consumer,
    positions_to_rewind,
    record_ids,
    seen_after,
    seen_ids,
)
from shared.events.schemas import EventSchemaError, validate_event
from shared.tracing import TRACEPARENT

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, Event], None]
# A handler's set-based form: applies several events of its type at once (see with_set_based_form).
SetBasedHandler = Callable[[UnitOfWork, Sequence[Event]], None]
# Runs once per batch, after its handlers and before the commit, with the events applied now.
AfterBatch = Callable[[UnitOfWork, Sequence[Event]], None]

# Exit code used by the test-only fault injection, so a test can tell it from a real crash.
FAULT_EXIT_CODE = 70

# Broker waits inside a batch stay well under a shutdown's budget (10 s from SIGTERM to exit).
COMMIT_TIMEOUT_SECONDS = 3.0
DEAD_LETTER_TIMEOUT_SECONDS = 5.0

# The database itself is unavailable (connection lost, server gone): never the message's fault.
TRANSIENT_DB_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError)


REWOUND = Counter(
    "hirfa_consumer_rewound_partitions_total",
    "Partitions a consumer read again from their beginning because the broker lost records",
    ["consumer", "topic", "reason"],
)
LAG = Gauge(
    "hirfa_consumer_lag_messages",
    "Messages in a partition the consumer has not read yet (the partition's end, as last fetched, "
    "less the consumer's position); only the partitions assigned to it",
    ["consumer", "topic", "partition"],
)
DEAD_LETTERED = Counter(
    "hirfa_consumer_dead_letters_total",
    "Messages the consumer could not apply and sent to its dead-letter topic, by the topic they came from",
    ["consumer", "topic"],
)


def with_set_based_form(handler: Handler, apply_many: SetBasedHandler) -> Handler:
    """``handler``, which the consumer may apply to consecutive events of its type all at once with
    ``apply_many``: the same effects as ``handler`` on each event in order, in fewer statements.
    ``apply_many`` writes nothing it cannot keep: it raises instead (``ApplyOneByOne`` when it
    simply does not take such events), and the events are then applied one at a time."""
    handler.apply_many = apply_many  # type: ignore[attr-defined]
    return handler


def set_based_form(handler: Handler) -> SetBasedHandler | None:
    apply_many: SetBasedHandler | None = getattr(handler, "apply_many", None)
    return apply_many


class ApplyOneByOne(Exception):
    """Raised by a set-based form before it writes anything, for events it leaves to the handler
    one at a time (a rare shape it does not take); not an error."""


class StopRequested(Exception):
    """Raised by a client factory that saw the stop request between two broker calls."""


class PoisonMessage(Exception):
    """The message can never be applied; it belongs in the dead-letter topic."""


class Outcome(enum.Enum):
    APPLIED = "applied"  # the handler ran and the inbox row was written
    SKIPPED = "skipped"  # applied before, a duplicate earlier in the batch, or not our event type
    FAILED = "failed"  # the handler raised: rolled back to its savepoint, not marked handled
    DEFERRED = "deferred"  # not tried: an earlier event with the same key failed in this batch


@dataclasses.dataclass(frozen=True)
class Result:
    outcome: Outcome
    error: Exception | None = None


_SKIPPED = Result(Outcome.SKIPPED)
_APPLIED = Result(Outcome.APPLIED)
_DEFERRED = Result(Outcome.DEFERRED)


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
        batch_size: int = 1,
        fault_injection: str = "",
        after_batch: AfterBatch | None = None,
        position_guard: PositionGuard | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.name = name
        self.handlers = handlers
        self.uow_factory = uow_factory
        self.inbox_model = inbox_model
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self.dead_letter_topic = dead_letter_topic
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.fault_injection = fault_injection
        self.after_batch = after_batch
        self.position_guard = position_guard
        self._consumer: Any = None
        self._producer: Any = None
        self._failures: dict[tuple[str, int, int], int] = {}
        self._lag_shown: set[tuple[str, int]] = set()

    # -- applying events -----------------------------------------------------------------

    def decode(self, value: bytes, key: bytes | None) -> Event:
        try:
            envelope = orjson.loads(value)  # a quarter of json.loads' time; JSONDecodeError alike
        except (UnicodeDecodeError, orjson.JSONDecodeError) as exc:
            raise PoisonMessage(f"not JSON: {exc}") from None
        try:
            validate_event(envelope)
        except EventSchemaError as exc:
            refusal = _refusal_without_trace_context(envelope, exc)
            if refusal is not None:
                raise PoisonMessage(f"schema violation: {refusal}") from None
        except (TypeError, KeyError) as exc:
            raise PoisonMessage(f"not an event envelope: {exc}") from None
        return Event.from_envelope(envelope, key=(key or b"").decode(errors="replace"))

    def apply(self, event: Event) -> bool:
        """Apply ``event`` once. Returns False when it was already applied (or is not ours).

        A failing handler's exception is raised, as if the event had been applied on its own.
        """
        result = self.apply_batch([event])[0]
        if result.outcome is Outcome.FAILED:
            assert result.error is not None
            raise result.error
        return result.outcome is Outcome.APPLIED

    def apply_batch(self, events: Sequence[Event]) -> list[Result]:
        """Apply ``events`` in one database transaction; one ``Result`` per event, in order.

        Each event is applied at most once (the inbox, and the same id twice in ``events``), each
        handler in its own savepoint. A handler's exception is returned in its result, not raised;
        a database outage is raised, and then nothing of the batch was committed.
        """
        results = [_SKIPPED] * len(events)
        ours = [index for index, event in enumerate(events) if event.type in self.handlers]
        if not ours:
            return results  # other services' event types share the topics; not for us
        with self.uow_factory() as uow:
            session = uow.session
            assert session is not None
            done = self._already_applied(session, {events[index].id for index in ours})
            failed_keys: set[str] = set()
            run: list[int] = []  # consecutive events of one type with a set-based form

            def apply_run() -> None:
                if run:
                    self._apply_run(uow, events, run, results, failed_keys, done)
                    run.clear()

            for index in ours:
                event = events[index]
                if event.id in done:
                    log.info("event already applied; skipped", extra={"event_id": event.id})
                    continue
                if event.key in failed_keys:
                    # Applying it now would overtake its subject's earlier, failed event.
                    results[index] = _DEFERRED
                    continue
                done.add(event.id)  # a second copy later in the batch is skipped
                if set_based_form(self.handlers[event.type]) is not None:
                    if run and events[run[0]].type != event.type:
                        apply_run()
                    run.append(index)
                    continue
                apply_run()  # what came before this event is applied before it
                results[index] = self._apply_in_savepoint(uow, event)
                if results[index].outcome is Outcome.FAILED:
                    failed_keys.add(event.key)
                    done.discard(event.id)
            apply_run()
            applied = [events[index] for index in ours if results[index] is _APPLIED]
            if self.after_batch is not None and applied:
                # Its own failures are its business (it must keep them out of the batch): an
                # exception here fails the batch as a whole, and it is retried event by event.
                self.after_batch(uow, applied)
            uow.commit()
        return results

    def _already_applied(self, session: Session, event_ids: set[str]) -> set[str]:
        return present(session, self.inbox_model.__table__.c.event_id, event_ids, consumer=self.name)

    def _apply_run(
        self,
        uow: UnitOfWork,
        events: Sequence[Event],
        run: list[int],
        results: list[Result],
        failed_keys: set[str],
        done: set[str],
    ) -> None:
        """Apply ``events[run]`` (one type, in batch order) set-based in one savepoint; if that
        fails, or for a lone event, one at a time, each in its own savepoint. Fills in their
        ``results``."""
        batch = [events[index] for index in run]
        if len(batch) > 1 and self._apply_set_based(uow, batch):
            for index in run:
                results[index] = _APPLIED
            return
        for index in run:
            event = events[index]
            if event.key in failed_keys:
                results[index] = _DEFERRED
                continue
            results[index] = self._apply_in_savepoint(uow, event)
            if results[index].outcome is Outcome.FAILED:
                failed_keys.add(event.key)
                done.discard(event.id)

    def _apply_set_based(self, uow: UnitOfWork, batch: list[Event]) -> bool:
        """Apply ``batch`` with its handler's set-based form, in one savepoint; whether it did
        (if not, the savepoint was rolled back and nothing of it is left)."""
        chosen = tracing.tracer()
        if chosen is None:
            return self._apply_set_based_in_savepoint(uow, batch)
        span = tracing.start_processing_together(chosen, batch, self.name)
        try:
            applied = self._apply_set_based_in_savepoint(uow, batch)
        except BaseException as exc:
            tracing.finish_processing_together(span, applied=False, error=exc)
            raise
        tracing.finish_processing_together(span, applied=applied)
        return applied

    def _apply_set_based_in_savepoint(self, uow: UnitOfWork, batch: list[Event]) -> bool:
        session = uow.session
        assert session is not None
        apply_many = set_based_form(self.handlers[batch[0].type])
        assert apply_many is not None
        session.expunge_all()  # as _apply_in_savepoint: the run sees the database, not stale objects
        savepoint = session.begin_nested()
        try:
            # The inbox rows first: a concurrent consumer given the same events (a rebalance) waits
            # on them, then finds them taken, instead of posting twice.
            self._record_applied(session, batch)
            apply_many(uow, batch)
            uow.write_events()
            savepoint.commit()
        except TRANSIENT_DB_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - found again one event at a time
            savepoint.rollback()
            uow.discard_events()
            if not isinstance(exc, ApplyOneByOne):
                log.warning(
                    "set-based apply failed; applying its events one at a time",
                    exc_info=exc,
                    extra={"event_type": batch[0].type, "events": len(batch)},
                )
            return False
        return True

    def _record_applied(self, session: Session, events: Sequence[Event]) -> None:
        """The inbox rows of ``events``, in one statement; in event id order, the order every
        consumer inserts in, so two of them given overlapping events wait for each other instead
        of deadlocking."""
        events = sorted(events, key=lambda event: event.id)
        insert_many(
            session,
            self.inbox_model.__table__,
            {
                "consumer": Same(self.name),
                "event_id": [event.id for event in events],
                "event_type": [event.type for event in events],
                "processed_at": Same(utcnow()),
            },
            len(events),
        )

    def _apply_in_savepoint(self, uow: UnitOfWork, event: Event) -> Result:
        chosen = tracing.tracer()
        if chosen is None:
            return self._apply_one_in_savepoint(uow, event)
        with tracing.processing(chosen, event, self.name) as span:
            result = self._apply_one_in_savepoint(uow, event)
            if result.error is not None:
                tracing.failed(span, result.error)
            return result

    def _apply_one_in_savepoint(self, uow: UnitOfWork, event: Event) -> Result:
        session = uow.session
        assert session is not None
        # Each event sees the database as its own unit of work would: nothing left in the identity
        # map by its batch-mates, whose rows a concurrent writer (the release worker, another
        # consumer) may have changed since. It also keeps a large batch's session small.
        session.expunge_all()
        savepoint = session.begin_nested()
        try:
            self.handlers[event.type](uow, event)
            # The handler's outbox events and the inbox row belong to this savepoint: they are
            # saved with the handler's effect or rolled back with it.
            uow.write_events()
            session.add(self.inbox_model(consumer=self.name, event_id=event.id, event_type=event.type))
            session.flush()  # a constraint violation must surface here, not at the batch commit
            savepoint.commit()
        except TRANSIENT_DB_ERRORS:
            raise  # the whole transaction is lost; the caller rolls back and rewinds the batch
        except Exception as exc:  # noqa: BLE001 - a handler bug or bad data: this event only
            savepoint.rollback()
            uow.discard_events()
            if isinstance(exc, sa_exc.IntegrityError) and self._already_applied(session, {event.id}):
                # A concurrent consumer (during a rebalance) applied it first.
                log.info("event already applied; skipped", extra={"event_id": event.id})
                return _SKIPPED
            return Result(Outcome.FAILED, exc)
        return _APPLIED

    # -- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event, heartbeat: Callable[[], None] | None = None) -> None:
        """Consume until ``stop`` is set; ``heartbeat`` is called at every turn of the loop."""
        log.info(
            "consumer started",
            extra={"consumer": self.name, "types": sorted(self.handlers), "batch_size": self.batch_size},
        )
        backoff = 0.5
        while not stop.is_set():
            if heartbeat is not None:
                heartbeat()
            try:
                if self._consumer is None:
                    self._consumer = self._consumer_factory()
                batches = self._consumer.poll(timeout_ms=500, max_records=self.batch_size)
                if self.position_guard is not None and self.position_guard.due(self._consumer):
                    # Before the batch is applied: a partition sent back to its beginning is read
                    # again from there, so its records polled now wait for that.
                    rewound = self._guard_positions()
                    batches = {tp: records for tp, records in batches.items() if tp not in rewound}
                self._process_batches(batches, stop)
                self._show_lag()
                backoff = 0.5
            except StopRequested:
                break
            except _Rewind as rewind:
                log.warning("retrying after transient failure", extra={"error": str(rewind)})
                stop.wait(random.uniform(backoff / 2, backoff))
                backoff = min(backoff * 2, 10.0)
            except Exception:  # noqa: BLE001 - broker gone etc.: rebuild the client and retry
                log.exception("consumer loop failed; reconnecting")
                self._close()
                if self.position_guard is not None:
                    self.position_guard.look_soon()
                stop.wait(random.uniform(backoff / 2, backoff))
                backoff = min(backoff * 2, 10.0)
        self._close()
        log.info("consumer stopped", extra={"consumer": self.name})

    def _process_batches(self, batches: dict[Any, list[Any]], stop: threading.Event) -> None:
        """Apply one poll's records as one batch, then commit the offsets it completed."""
        # The client's position is already past every record poll() returned; whatever is not
        # completed here must be sought back to, or the next poll would skip it.
        first_offsets = {tp: records[0].offset for tp, records in batches.items() if records}
        if not first_offsets:
            return
        if stop.is_set():
            self._seek(first_offsets)
            return
        records = [(tp, record) for tp, partition_records in batches.items() for record in partition_records]

        dead: dict[int, str] = {}  # record index -> error, for the dead-letter topic
        decoded: list[tuple[int, Event]] = []
        for index, (_, record) in enumerate(records):
            try:
                decoded.append((index, self.decode(record.value, record.key)))
            except PoisonMessage as exc:
                dead[index] = str(exc)

        try:
            results = self._apply_events([event for _, event in decoded])
        except TRANSIENT_DB_ERRORS as exc:
            # Rolled back (or, one-at-a-time, partly committed: the inbox skips those next time).
            self._seek(first_offsets)
            raise _Rewind(f"{type(exc).__name__}") from exc

        # The database commit is done. Decide, per partition, where the next poll must resume.
        resume: dict[Any, int] = {}
        retry = False
        for (index, event), result in zip(decoded, results, strict=True):
            tp, record = records[index]
            position = (record.topic, record.partition, record.offset)
            if result.outcome is Outcome.FAILED:
                error = result.error
                attempts = self._failures.get(position, 0) + 1
                self._failures[position] = attempts
                log.error(
                    "handler failed",
                    exc_info=error,
                    extra={"attempt": attempts, "offset": record.offset, "event_id": event.id},
                )
                if attempts < self.max_attempts:
                    resume[tp] = min(resume.get(tp, record.offset), record.offset)
                    retry = True
                else:
                    dead[index] = f"{type(error).__name__}: {error}"
            elif result.outcome is Outcome.DEFERRED:
                resume[tp] = min(resume.get(tp, record.offset), record.offset)
            else:
                self._failures.pop(position, None)
                if result.outcome is Outcome.APPLIED:
                    log.info("event applied", extra={"event_id": event.id, "event_type": event.type})

        # Dead-letter only what lies before its partition's resume point: a later message comes
        # back with the redelivery and is judged again then (no duplicate dead letters).
        for index in sorted(dead):
            tp, record = records[index]
            if record.offset < resume.get(tp, record.offset + 1):
                self._dead_letter(record, dead[index])
                self._failures.pop((record.topic, record.partition, record.offset), None)

        if self.fault_injection == "crash_after_db_commit":
            # Test-only: die between the database commit and the offset commit.
            os._exit(FAULT_EXIT_CODE)
        completed = {
            tp: resume.get(tp, partition_records[-1].offset + 1)
            for tp, partition_records in batches.items()
            if partition_records
        }
        self._commit_offsets({tp: offset for tp, offset in completed.items() if offset > first_offsets[tp]})
        self._seek(resume)
        if retry:
            raise _Rewind("handler failed; retrying")

    def _apply_events(self, events: list[Event]) -> list[Result]:
        """``apply_batch``; if the batch fails as a whole (not in a handler), one event at a time.

        A failure outside every savepoint (the commit itself, a handler that broke its savepoint)
        cannot be pinned on one message; applied alone, it can, and then it is retried and
        dead-lettered like any failing handler instead of blocking the batch forever.
        """
        try:
            return self.apply_batch(events)
        except TRANSIENT_DB_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - see the docstring
            if len(events) == 1:
                return [Result(Outcome.FAILED, exc)]
            log.exception("batch failed as a whole; applying its events one at a time")
        results: list[Result] = []
        failed_keys: set[str] = set()
        for event in events:
            if event.key in failed_keys:
                results.append(_DEFERRED)
                continue
            result = self._apply_events([event])[0]
            if result.outcome is Outcome.FAILED:
                failed_keys.add(event.key)
            results.append(result)
        return results

    def _guard_positions(self) -> set[Any]:
        """Let the guard send partitions whose log was lost back to their beginning; which."""
        assert self.position_guard is not None
        try:
            rewound = self.position_guard.check(self._consumer, self._commit_offsets)
        except KafkaError as exc:
            # The broker cannot say now (it is down, or starting): look again shortly.
            log.warning("could not compare positions with the broker", extra={"error": repr(exc)})
            self.position_guard.look_soon()
            return set()
        for topic, partition, offset in list(self._failures):
            if any((tp.topic, tp.partition) == (topic, partition) for tp in rewound):
                self._failures.pop((topic, partition, offset), None)
        return rewound

    def _show_lag(self) -> None:
        """Each assigned partition's lag, from what the client already knows (the end its last
        fetch saw, its own position): no request to the broker. A partition no longer assigned
        leaves the gauge, as do those whose end is not known yet."""
        shown: set[tuple[str, int]] = set()
        highwater = getattr(self._consumer, "highwater", None)
        if highwater is not None:
            for tp in self._consumer.assignment():
                end = highwater(tp)
                position = self._consumer.position(tp, timeout_ms=0)
                if end is None or position is None:
                    continue
                LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(end - position, 0))
                shown.add((tp.topic, tp.partition))
        self._forget_lag(self._lag_shown - shown)
        self._lag_shown = shown

    def _forget_lag(self, partitions: set[tuple[str, int]]) -> None:
        for topic, partition in partitions:
            try:
                LAG.remove(self.name, topic, str(partition))
            except KeyError:
                pass

    def _seek(self, offsets: dict[Any, int]) -> None:
        for tp, offset in offsets.items():
            self._consumer.seek(tp, offset)

    def _commit_offsets(self, offsets: dict[Any, int]) -> None:
        if not offsets:
            return
        commits = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
        if isinstance(self._consumer, KafkaConsumer):
            # Bounded, so a broker that hangs mid-commit cannot hold up a shutdown; an offset not
            # committed only means a redelivery, which the inbox makes harmless.
            self._consumer.commit(commits, timeout_ms=int(COMMIT_TIMEOUT_SECONDS * 1000))
        else:
            self._consumer.commit(commits)

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
        self._producer.send(self.dead_letter_topic, key=record.key, value=record.value, headers=headers).get(
            timeout=DEAD_LETTER_TIMEOUT_SECONDS
        )
        DEAD_LETTERED.labels(self.name, record.topic).inc()
        log.error(
            "poison message sent to dead-letter topic",
            extra={"topic": record.topic, "offset": record.offset, "error": error[:300]},
        )

    def _close(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                close_quietly(client)
        self._consumer = None
        self._producer = None
        # Without a client there is no assignment: a lag shown now would be a stale one.
        self._forget_lag(self._lag_shown)
        self._lag_shown = set()


def _refusal_without_trace_context(envelope: Any, refusal: EventSchemaError) -> Exception | None:
    """What is still wrong with an envelope the schema refused once its ``traceparent`` is dropped;
    None when nothing is (it is then dropped). A malformed trace context only means the trace is
    not continued, never that the event is refused. Looked at only after a refusal: a valid
    envelope pays nothing for it."""
    if not isinstance(envelope, dict) or TRACEPARENT not in envelope:
        return refusal
    del envelope[TRACEPARENT]
    try:
        validate_event(envelope)
    except (EventSchemaError, TypeError, KeyError) as still:
        return still
    log.warning(
        "event's trace context is malformed; applied without it",
        extra={"event_id": envelope.get("id"), "event_type": envelope.get("type")},
    )
    return None


class _Rewind(Exception):
    """Internal: back off before the next poll; the partitions were rewound to what must be redone."""


def beginnings(consumer: Any, partitions: list[Any]) -> dict[Any, int]:
    """Where each of ``partitions`` begins now, for those the broker knows. kafka-python raises a
    KeyError for the whole request when one partition is not in its metadata (a topic made anew
    with fewer partitions than the assignment names): then each is asked alone. The client's
    other errors (the broker cannot answer) are raised."""
    timeout_ms = int(LOOK_TIMEOUT_SECONDS * 1000)
    try:
        return dict(consumer.beginning_offsets(partitions, timeout_ms=timeout_ms))
    except KeyError:
        pass
    starts = {}
    for tp in partitions:
        try:
            starts.update(consumer.beginning_offsets([tp], timeout_ms=timeout_ms))
        except KeyError:
            continue
    return starts


class PositionGuard:
    """Sends a consumer back to the beginning of every partition whose log it was reading is gone
    (see the module's docstring), and remembers the topic ids it saw in ``broker_topics``."""

    # After a look that failed (the broker is down), the next is this soon.
    RETRY_SECONDS = 1.0

    def __init__(
        self,
        *,
        reader: str,
        session_factory: sessionmaker[Session],
        topic_model: Any,
        interval_seconds: float,
    ) -> None:
        self.reader = reader
        self.session_factory = session_factory
        self.topic_model = topic_model
        self.interval_seconds = interval_seconds
        self._seen: dict[tuple[str, int], SeenIds] = {}
        self._looked_at: frozenset[Any] = frozenset()
        self._due_at = 0.0
        # Partitions seen ending before the position at the last look. A position beyond the end
        # is acted on when two looks in a row see it: a new leader's high watermark can lag
        # behind for a moment, and reading a whole partition again is not free.
        self._short: set[tuple[str, int]] = set()

    def due(self, consumer: Any) -> bool:
        """Time to look, or the partitions assigned changed since the last look (a rebalance)."""
        return time.monotonic() >= self._due_at or frozenset(consumer.assignment()) != self._looked_at

    def look_soon(self) -> None:
        self._due_at = min(self._due_at, time.monotonic() + self.RETRY_SECONDS)

    def check(self, consumer: Any, commit: Callable[[dict[Any, int]], None]) -> set[Any]:
        """Compare the assigned partitions' positions and topic ids with the broker; rewind and
        commit those whose log is gone. Returns the partitions rewound. Raises the client's error
        when the broker cannot be asked (nothing is changed then)."""
        assigned = frozenset(consumer.assignment())
        views = partitions_with_consumer(consumer, assigned)
        # A partition just assigned may have been another member's meanwhile: what this member
        # remembers of it may be stale, the database is not.
        for tp in assigned - self._looked_at:
            self._seen.pop((tp.topic, tp.partition), None)
        self._remember_from_database({view.topic for view in views if view.key not in self._seen})
        positions = {}
        for tp in assigned:
            # The position the consumer has now, without waiting for one it is still fetching
            # (that partition is looked at next time): the look stays within a poll's time.
            position = consumer.position(tp, timeout_ms=0)
            if position is not None:
                positions[(tp.topic, tp.partition)] = position
        found = positions_to_rewind(views, self._seen, positions)
        short = {(loss.topic, loss.partition) for loss in found if loss.reason is LossReason.LOG_TRUNCATED}
        rewinds = [
            loss
            for loss in found
            if loss.reason is not LossReason.LOG_TRUNCATED or (loss.topic, loss.partition) in self._short
        ]
        self._short = short - {(loss.topic, loss.partition) for loss in rewinds}
        rewound: set[Any] = set()
        unknown: set[tuple[str, int]] = set()
        if rewinds:
            by_key = {(tp.topic, tp.partition): tp for tp in assigned}
            starts = beginnings(consumer, [by_key[(loss.topic, loss.partition)] for loss in rewinds])
            # A partition the broker does not have now (a topic made anew with fewer partitions,
            # its assignment not caught up yet) is left as it is and looked at again soon; the
            # others are rewound.
            unknown = {(loss.topic, loss.partition) for loss in rewinds if by_key[loss.key] not in starts}
            rewinds = [loss for loss in rewinds if loss.key not in unknown]
            rewound = set(starts)
            for tp in rewound:
                consumer.seek(tp, starts[tp])
            # Committed now, before the ids are recorded: a restart must not find the old offsets
            # again with nothing left to tell they are wrong.
            if starts:
                commit(starts)
            for loss in rewinds:
                REWOUND.labels(self.reader, loss.topic, str(loss.reason)).inc()
                log.warning(
                    "the broker lost records this consumer had read or skipped; reading the partition again",
                    extra={
                        "consumer": self.reader,
                        "topic": loss.topic,
                        "partition": loss.partition,
                        "position": positions.get((loss.topic, loss.partition)),
                        "reason": str(loss.reason),
                    },
                )
        # The ids of a partition left unrewound are not recorded: the next look must still see
        # them changed.
        self._record([view for view in views if view.key not in unknown])
        self._looked_at = assigned
        # A partition seen short once, or not rewound yet, is looked at again soon.
        again_soon = self._short or unknown
        self._due_at = time.monotonic() + (self.RETRY_SECONDS if again_soon else self.interval_seconds)
        return rewound

    def _remember_from_database(self, topics: set[str]) -> None:
        if topics:
            with self.session_factory() as session:
                self._seen.update(seen_ids(session, self.topic_model, self.reader, topics))

    def _record(self, views: list[Any]) -> None:
        changed = [
            view for view in views if self._seen.get(view.key) != seen_after(self._seen.get(view.key), view)
        ]
        if not changed:
            return
        with self.session_factory() as session:
            # Read again: another member of the group may have recorded a partition meanwhile.
            seen = seen_ids(session, self.topic_model, self.reader, {view.topic for view in changed})
            record_ids(session, self.topic_model, self.reader, changed, seen)
            try:
                session.commit()
            except sa_exc.IntegrityError:
                session.rollback()
                return
            self._seen.update(
                seen_ids(session, self.topic_model, self.reader, {view.topic for view in changed})
            )
