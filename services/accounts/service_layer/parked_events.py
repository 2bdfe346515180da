"""Money events that arrive before what they depend on: parked, then posted when it has happened.

Accounts reads ``onboarding.events`` and ``payments.events``, and the two are not ordered with each
other; replays and redeliveries can reorder one topic too. So a payment can arrive before the
artisan's tier is known (or before the upgrade that makes room under their cap), a refund or a
dispute before its payment is posted, a dispute's closing before its opening. Posting such an event
as it comes would be wrong (a refund taken from money the artisan never received), and dropping it
as a case would lose a movement that really happened at the gateway.

A handler that finds it cannot post yet raises ``NotPostableYet``. The event is then handled (the
consumer writes its inbox row) by parking it: a ``ParkedEvent`` row and a ledger case in state
``waiting`` that says what it waits for. ``post_parked_events`` tries the parked events of the
artisans of every consumer batch again, in the batch's transaction, in the order they were parked,
until none moves; the accounts worker does the same for every artisan on each pass (a payout can
make room under a cap). Once posted, the row goes and the case is ``resolved``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily

from services.accounts.adapters.orm import LedgerCase, ParkedEvent
from shared.bulk_sql import present
from shared.db import UnitOfWork, utcnow
from shared.events import Event
from shared.events.consumer import TRANSIENT_DB_ERRORS, Handler
from shared.ids import new_id
from shared.probes import seconds_since

log = logging.getLogger(__name__)

# The worker tries an artisan's parked events again once none was tried for this long (the
# consumer tries them after every batch about the artisan, whatever the time).
WORKER_RETRY_AFTER = dt.timedelta(seconds=30)


class NotPostableYet(Exception):
    """The event depends on something the ledger has not heard of yet; nothing was written."""

    def __init__(self, waiting_for: str, detail: dict | None = None) -> None:
        super().__init__(waiting_for)
        self.waiting_for = waiting_for  # the case's kind: tier_cap_exceeded, payment_not_posted, …
        self.detail = detail or {}


def parking(handler: Handler) -> Handler:
    """``handler``, except that an event it cannot post yet is parked instead of failing."""

    def handle_or_park(uow: UnitOfWork, event: Event) -> None:
        try:
            handler(uow, event)
        except NotPostableYet as waiting:
            park(uow, event, waiting)

    handle_or_park.__wrapped__ = handler  # type: ignore[attr-defined]
    return handle_or_park


def park(uow: UnitOfWork, event: Event, waiting: NotPostableYet) -> ParkedEvent:
    artisan_id = event.data["artisan_id"]
    case = LedgerCase(
        id=new_id("lc"),
        kind=waiting.waiting_for,
        status="waiting",
        cause=event.type.split(".")[1],  # payments.refund.succeeded -> refund
        cause_id=_cause_id(event),
        event_id=event.id,
        artisan_id=artisan_id,
        details={**waiting.detail, "event_type": event.type},
        created_at=utcnow(),
    )
    parked = ParkedEvent(
        event_id=event.id,
        event_type=event.type,
        artisan_id=artisan_id,
        envelope=event.envelope(),
        waiting_for=waiting.waiting_for,
        case_id=case.id,
        attempts=0,
        parked_at=utcnow(),
    )
    uow.session.add_all([case, parked])
    log.info("money event parked", extra={"event_id": event.id, "waiting_for": waiting.waiting_for})
    return parked


def _cause_id(event: Event) -> str:
    data = event.data
    for field in ("dispute_id", "refund_id", "payment_id"):
        if field in data:
            return data[field]
    return event.id


def post_parked_events(
    uow: UnitOfWork, handlers: Mapping[str, Handler], artisan_ids: Iterable[str] | None = None
) -> int:
    """Try the parked events of ``artisan_ids`` (all artisans: None) again, in the caller's
    transaction; returns how many were posted. Passes repeat while one posts, since a posted
    payment lets its refunds through. Each attempt has its own savepoint: one that still cannot
    post, or fails, leaves everything else as it was."""
    session = uow.session
    # Locked, skipping rows another process is trying: the worker and a consumer never post the
    # same parked event twice at once (the posting key would refuse the second anyway).
    query = sa.select(ParkedEvent).order_by(ParkedEvent.seq).with_for_update(skip_locked=True)
    # Whatever the caller recorded so far belongs outside the savepoints below.
    uow.write_events()
    if artisan_ids is not None:
        session.flush()
        # A consumer asks after every batch, and most batches' artisans have nothing parked: which
        # of them have is one index probe each (a plain statement), and only their parked events
        # are locked and loaded.
        artisan_ids = sorted(present(session, ParkedEvent.__table__.c.artisan_id, set(artisan_ids)))
        if not artisan_ids:
            return 0
        query = query.where(ParkedEvent.artisan_id.in_(artisan_ids))
    posted = 0
    waiting = session.scalars(query).all()
    while waiting:
        still_waiting = []
        for parked in waiting:
            if _try_again(uow, handlers, parked):
                posted += 1
            else:
                still_waiting.append(parked)
        if len(still_waiting) == len(waiting):
            break
        waiting = still_waiting
    return posted


def _try_again(uow: UnitOfWork, handlers: Mapping[str, Handler], parked: ParkedEvent) -> bool:
    session = uow.session
    handler = handlers[parked.event_type]
    handler = getattr(handler, "__wrapped__", handler)  # the bare handler: it must not park again
    event = Event.from_envelope(parked.envelope, key=parked.artisan_id)
    savepoint = session.begin_nested()
    try:
        handler(uow, event)
        uow.write_events()
        session.flush()
    except NotPostableYet as waiting:
        savepoint.rollback()
        uow.discard_events()
        if waiting.waiting_for != parked.waiting_for:
            # It waits for something else now (the tier came, but the cap is still too low): the
            # operator's case says what it waits for today.
            parked.waiting_for = waiting.waiting_for
            case = session.get(LedgerCase, parked.case_id)
            if case is not None:
                case.kind = waiting.waiting_for
                case.details = {**case.details, **waiting.detail}
        _note_attempt(parked)
        return False
    except TRANSIENT_DB_ERRORS:
        raise
    except Exception:  # noqa: BLE001 - one parked event's bug must not stop the others
        savepoint.rollback()
        uow.discard_events()
        log.exception("parked event failed", extra={"event_id": parked.event_id})
        _note_attempt(parked)
        return False
    savepoint.commit()
    case = session.get(LedgerCase, parked.case_id)
    if case is not None:
        case.mark_resolved("posted", at=utcnow())
    session.delete(parked)
    log.info("parked event posted", extra={"event_id": parked.event_id})
    return True


def _note_attempt(parked: ParkedEvent) -> None:
    parked.attempts += 1
    parked.last_attempt_at = utcnow()


def make_after_batch(handlers: Mapping[str, Handler]) -> Callable[[UnitOfWork, Sequence[Event]], None]:
    """The consumer's after-batch step: the batch's artisans' parked events, tried again."""

    def after_batch(uow: UnitOfWork, applied: Sequence[Event]) -> None:
        artisans = {event.data.get("artisan_id") for event in applied}
        post_parked_events(uow, handlers, [artisan_id for artisan_id in artisans if artisan_id])

    return after_batch


def post_all_parked_events(
    uow_factory: Callable[[], UnitOfWork],
    handlers: Mapping[str, Handler],
    *,
    now: dt.datetime | None = None,
    limit: int = 100,
) -> int:
    """The worker's pass over parked events (a payout may have made room under a cap); returns how
    many were posted.

    One transaction per artisan: holding one artisan's accounts while locking the next one's
    would deadlock with the consumer, which locks them in the other order. An artisan whose
    parked events were all tried within ``WORKER_RETRY_AFTER`` waits for a later pass, so a
    backlog that cannot move costs little; at most ``limit`` artisans a pass, longest waiting first.
    """
    cutoff = (now or utcnow()) - WORKER_RETRY_AFTER
    due = sa.or_(ParkedEvent.last_attempt_at.is_(None), ParkedEvent.last_attempt_at < cutoff)
    with uow_factory() as uow:
        artisan_ids = list(
            uow.session.scalars(
                sa.select(ParkedEvent.artisan_id)
                .where(due)
                .group_by(ParkedEvent.artisan_id)
                .order_by(sa.func.min(ParkedEvent.seq))
                .limit(limit)
            )
        )
    posted = 0
    for artisan_id in artisan_ids:
        with uow_factory() as uow:
            posted += post_parked_events(uow, handlers, [artisan_id])
            uow.commit()
    return posted


class ParkedEventsCollector:
    """``/metrics`` of the accounts worker: the money events parked, by what they wait for, and how
    long the oldest has waited, read at scrape time. One that waits for hours is a case to look at:
    what it waits for may never come."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        self.uow_factory = uow_factory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.uow_factory() as uow:
                rows = uow.session.execute(
                    sa.select(ParkedEvent.waiting_for, sa.func.count(), sa.func.min(ParkedEvent.parked_at))
                    .group_by(ParkedEvent.waiting_for)
                    .order_by(ParkedEvent.waiting_for)
                ).all()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is down
            return
        parked = GaugeMetricFamily(
            "hirfa_ledger_parked_events",
            "Money events parked until what they wait for has happened, by what they wait for",
            labels=["waiting_for"],
        )
        for waiting_for, count, _ in rows:
            parked.add_metric([waiting_for], count)
        yield parked
        oldest = min((row[2] for row in rows), default=None)
        yield GaugeMetricFamily(
            "hirfa_ledger_oldest_parked_event_seconds",
            "How long the oldest parked money event has waited (0: none)",
            value=seconds_since(oldest),
        )

    def describe(self) -> list[GaugeMetricFamily]:
        return []
