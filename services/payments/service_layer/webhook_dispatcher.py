"""The worker's webhook dispatcher: endpoints with due deliveries get a turn on a thread of their lane.

    a change      the caller's transaction: ``record_webhook_event`` stores the event (with the
                  object's next sequence number) and one pending delivery per subscribed endpoint
    the worker    a ``WebhookDispatcher`` on its own thread: an endpoint with due deliveries gets a
                  turn as soon as a thread of its lane is free (looked for every tick, and whenever
                  a turn ends, never waiting for the turns in flight); a turn leases the endpoint
                  (conditional UPDATEs, so two workers never send the same attempt) and sends its
                  due deliveries one after the other; every attempt is recorded, failures retried
                  with backoff. ``deliver_due_webhooks`` is one pass of the same, waited for
    a marketplace ``retry_webhook_delivery`` sends one delivery again, now, whatever its status

Two lanes keep endpoints in trouble from holding up the others. An endpoint whose last attempt failed
(``failing_since``, set and cleared in the attempt's transaction) is served only by the few threads
of the troubled lane; the others by the healthy lane's threads; a success moves it back. A turn ends
at the first failure, and the endpoint rests a moment before its next attempt, so a dead endpoint
gets one attempt per rest and the troubled endpoints take turns. Only an endpoint's first failure,
before anyone could know, holds a healthy thread: for at most the timeout. No transaction is open
while an endpoint is called.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import WebhookDelivery, WebhookEndpoint
from services.payments.domain.webhooks import AttemptTrigger, DeliveryStatus, EndpointStatus
from services.payments.service_layer.settings import WebhookSettings
from services.payments.service_layer.webhook_deliveries import (
    Outgoing,
    lease,
    lease_free,
    outgoing_attempt,
    record_attempt,
    send,
)
from services.payments.service_layer.webhook_endpoints import cancel_pending_deliveries
from shared.db import UnitOfWork, utcnow

log = logging.getLogger(__name__)

# After the dispatcher failed to look for due deliveries (the database away): not every tick's log.
DISPATCH_RETRY_SECONDS = 2.0


class Lane(enum.Enum):
    HEALTHY = "healthy"  # the endpoint's last attempt succeeded, or it has had none yet
    TROUBLED = "troubled"  # failing since its last success: dead, timing out or answering errors


class WebhookDispatcher:
    """Gives endpoints with due deliveries a turn on the threads of their lane, as soon as one is free.

    ``run`` is the worker's loop; ``deliver_once`` one pass, waited for. ``now`` moves the clock
    (tests): the dispatcher then runs at ``now`` plus the real time elapsed.
    """

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        settings: WebhookSettings,
        *,
        now: dt.datetime | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._settings = settings
        self._clock = _clock(now)
        self._threads = {Lane.HEALTHY: settings.concurrency, Lane.TROUBLED: settings.troubled_concurrency}
        self._pools = {
            lane: ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"webhooks-{lane.value}")
            for lane, threads in self._threads.items()
        }
        self._lock = threading.Lock()
        self._in_flight: dict[str, Lane] = {}  # endpoint id → the lane its turn runs in
        self._attempts = 0
        self._turn_ended = threading.Event()
        self._stopping = threading.Event()  # turns stop after the attempt in hand

    def run(self, stop: threading.Event, on_tick: Callable[[bool], None] | None = None) -> None:
        """Dispatch until ``stop`` is set; then let the attempts in flight end and be recorded.
        ``on_tick`` hears of every look for due deliveries, and whether it worked."""
        log.info(
            "webhook dispatcher started",
            extra={
                "healthy_threads": self._threads[Lane.HEALTHY],
                "troubled_threads": self._threads[Lane.TROUBLED],
            },
        )
        try:
            while not stop.is_set():
                try:
                    self.dispatch()
                    wait, dispatched = self._settings.dispatch_interval_seconds, True
                except Exception:  # noqa: BLE001 - the database away a moment must not end the worker
                    log.exception("webhook dispatch failed")
                    wait, dispatched = DISPATCH_RETRY_SECONDS, False
                if on_tick is not None:
                    on_tick(dispatched)
                self._turn_ended.wait(wait)
                self._turn_ended.clear()  # before dispatching: a turn ending from now on wakes the next wait
        finally:
            self.close()
        log.info("webhook dispatcher stopped", extra={"attempts": self._attempts})

    def dispatch(self) -> int:
        """Start a turn for due endpoints, up to the free threads of each lane; return how many. Never
        waits for the turns in flight: their endpoints are left out, their threads counted as taken."""
        started = 0
        for lane, threads in self._threads.items():
            with self._lock:
                busy = list(self._in_flight)
                free = threads - sum(1 for taken in self._in_flight.values() if taken is lane)
            if free <= 0:
                continue
            with self._uow_factory() as uow:
                endpoint_ids = _endpoints_with_due_deliveries(
                    uow.session, self._clock(), lane, limit=free, excluding=busy
                )
            for endpoint_id in endpoint_ids:
                self._start_turn(lane, endpoint_id)
            started += len(endpoint_ids)
        return started

    def deliver_once(self) -> int:
        """One turn for every endpoint with something due, in its lane, all waited for; return how
        many attempts were made. The dispatcher is spent afterwards."""
        now = self._clock()
        with self._uow_factory() as uow:
            due = {
                lane: _endpoints_with_due_deliveries(
                    uow.session, now, lane, limit=self._settings.endpoints_per_pass
                )
                for lane in Lane
            }
        for lane, endpoint_ids in due.items():
            for endpoint_id in endpoint_ids:
                self._start_turn(lane, endpoint_id)  # beyond the lane's threads, turns queue
        self._wait_for_turns()
        return self._attempts

    def close(self) -> None:
        """Start no more attempts, and wait for those in flight to be recorded (at most a timeout)."""
        self._stopping.set()
        self._wait_for_turns()

    def _wait_for_turns(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True)

    def _start_turn(self, lane: Lane, endpoint_id: str) -> None:
        with self._lock:
            self._in_flight[endpoint_id] = lane
        turn = self._pools[lane].submit(
            _deliver_to_endpoint, self._uow_factory, self._settings, endpoint_id, self._clock, self._stopping
        )
        turn.add_done_callback(lambda ended: self._end_turn(endpoint_id, ended))

    def _end_turn(self, endpoint_id: str, turn: Future[int]) -> None:
        with self._lock:
            del self._in_flight[endpoint_id]
            self._attempts += 0 if turn.cancelled() or turn.exception() else turn.result()
        self._turn_ended.set()


def deliver_due_webhooks(
    uow_factory: Callable[[], UnitOfWork], settings: WebhookSettings, *, now: dt.datetime | None = None
) -> int:
    """Send the deliveries that are due, one pass, and return how many attempts were made (tests, and
    ``hirfa payments worker --once``; the worker runs a ``WebhookDispatcher``).

    Each endpoint with something due gets one turn on a thread of its lane: its due deliveries one
    after the other, until none is left, one fails, or the turn had its share. ``now`` moves the clock.
    """
    return WebhookDispatcher(uow_factory, settings, now=now).deliver_once()


def _clock(now: dt.datetime | None) -> Callable[[], dt.datetime]:
    if now is None:
        return utcnow
    offset = now - utcnow()
    return lambda: utcnow() + offset


def _endpoints_with_due_deliveries(
    session: Session, now: dt.datetime, lane: Lane, *, limit: int, excluding: Collection[str] = ()
) -> list[str]:
    """The lane's endpoints that have a delivery due and that nobody is delivering to, nor resting
    after a failure, the longest-waiting first; none of ``excluding`` (in a turn of this process)."""
    failing = WebhookEndpoint.failing_since
    oldest_due = sa.func.min(WebhookDelivery.next_attempt_at)
    query = (
        sa.select(WebhookDelivery.endpoint_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            lease_free(WebhookDelivery, now),
            lease_free(WebhookEndpoint, now),
            sa.or_(WebhookEndpoint.resting_until.is_(None), WebhookEndpoint.resting_until <= now),
            failing.is_not(None) if lane is Lane.TROUBLED else failing.is_(None),
        )
        .group_by(WebhookDelivery.endpoint_id)
        .order_by(oldest_due)
        .limit(limit)
    )
    if excluding:
        query = query.where(WebhookDelivery.endpoint_id.not_in(list(excluding)))
    return list(session.scalars(query))


def _deliver_to_endpoint(
    uow_factory: Callable[[], UnitOfWork],
    settings: WebhookSettings,
    endpoint_id: str,
    clock: Callable[[], dt.datetime],
    stopping: threading.Event,
) -> int:
    """One turn of the endpoint: lease it, then send its due deliveries one at a time."""
    attempts = 0
    try:
        with uow_factory() as uow:
            token = lease(uow.session, WebhookEndpoint, endpoint_id, clock(), settings)
            uow.commit()
        if token is None:
            return 0  # another worker is delivering to it
        try:
            while attempts < settings.attempts_per_turn and not stopping.is_set():
                outgoing = _claim_next_delivery(uow_factory(), settings, endpoint_id, token, clock())
                if outgoing is None:
                    break
                outcome = send(settings, outgoing)
                record_attempt(uow_factory(), settings, outgoing, outcome, clock())
                attempts += 1
                if not outcome.delivered:
                    break  # the endpoint is in trouble: it rests, its other deliveries wait for a later turn
        finally:
            with uow_factory() as uow:
                uow.session.execute(
                    sa.update(WebhookEndpoint)
                    .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.lease_token == token)
                    .values(leased_until=None, lease_token=None)
                    .execution_options(synchronize_session=False)
                )
                uow.commit()
    except Exception:  # noqa: BLE001 - one endpoint's trouble must not end the others' turns
        log.exception("webhook deliveries to an endpoint failed", extra={"endpoint_id": endpoint_id})
    return attempts


def _claim_next_delivery(
    uow: UnitOfWork, settings: WebhookSettings, endpoint_id: str, endpoint_token: str, now: dt.datetime
) -> Outgoing | None:
    """Lease the endpoint's longest-waiting due delivery and make it ready to send, or None."""
    with uow:
        session = uow.session
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or endpoint.lease_token != endpoint_token:
            return None  # our lease ran out and another worker took the endpoint over
        if endpoint.status != EndpointStatus.ENABLED:
            # Disabled while this delivery was being recorded: nothing more goes to it.
            cancel_pending_deliveries(session, endpoint_id, now)
            uow.commit()
            return None
        pending = (WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now)
        for _ in range(3):  # a delivery leased by a manual retry meanwhile: take the next one
            delivery = session.scalar(
                sa.select(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == endpoint_id, *pending, lease_free(WebhookDelivery, now))
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(1)
            )
            if delivery is None:
                return None
            token = lease(session, WebhookDelivery, delivery.id, now, settings, *pending)
            if token is not None:
                endpoint.leased_until = now + settings.lease
                outgoing = outgoing_attempt(
                    session, delivery, endpoint, token, AttemptTrigger.AUTOMATIC, settings
                )
                uow.commit()
                return outgoing
        return None
