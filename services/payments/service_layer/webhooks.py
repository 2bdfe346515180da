"""Marketplace webhooks: endpoints, events recorded with the changes they announce, and deliveries.

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

Signing secrets are stored sealed (``shared.crypto`` envelope) and opened only to sign a request;
they are never logged, and of an endpoint's URL only the host is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import math
import secrets
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.payments.adapters.orm import (
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
    WebhookEvent,
    WebhookObjectSequence,
)
from services.payments.adapters.webhook_sender import (
    HttpWebhookSender,
    SendOutcome,
    WebhookRequest,
    WebhookSender,
)
from services.payments.config import PaymentsConfig
from services.payments.domain.webhooks import (
    ALL_EVENT_TYPES,
    WEBHOOK_EVENT_TYPES,
    AttemptTrigger,
    DeliveryStatus,
    EndpointStatus,
    EndpointUrlError,
    RetryPolicy,
    check_endpoint_url,
    event_body,
    new_signing_secret,
    normalise_event_types,
    subscribes_to,
    unknown_event_types,
    url_host,
)
from shared.auth import Principal
from shared.context import ServiceContext
from shared.crypto import DecryptionError, EnvelopeCipher, MasterKeyRing, SealedBlob
from shared.db import UnitOfWork, is_postgres, utcnow
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.ids import new_id
from shared.pagination import Page, paginate
from shared.signatures import sign

__all__ = [
    "WEBHOOK_EVENT_TYPES",
    "CreateWebhookEndpoint",
    "WebhookDispatcher",
    "WebhookSettings",
    "deliver_due_webhooks",
    "record_webhook_event",
    "retry_webhook_delivery",
    "webhook_settings",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Hirfa-Signature"
EVENT_ID_HEADER = "Hirfa-Event-Id"
DELIVERY_ID_HEADER = "Hirfa-Delivery-Id"
USER_AGENT = "Hirfa-Webhooks/1.0 (+https://docs.hirfa.ma/webhooks)"
# Enabled endpoints per marketplace: enough for staging, production and a few listeners.
MAX_ENDPOINTS = 16

# After the dispatcher failed to look for due deliveries (the database away): not every tick's log.
DISPATCH_RETRY_SECONDS = 2.0

ENDPOINT_PREFIX = "we"
DELIVERY_PREFIX = "whd"


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    cipher: EnvelopeCipher  # seals and opens the signing secrets
    sender: WebhookSender
    timeout_seconds: float  # of one attempt, from connecting to the status line
    concurrency: int  # healthy lane: endpoints served in parallel, one attempt in flight each
    retry: RetryPolicy
    require_https: bool  # production: endpoint URLs must be https
    allow_private_hosts: bool  # development: localhost and private addresses are fine
    # Troubled lane: the threads endpoints whose last attempt failed are served by, all they can
    # ever hold however many of them wait out a timeout per attempt.
    troubled_concurrency: int = 2
    # One endpoint's turn is at most this many attempts, and ends at a failure: then the endpoint
    # rests, and its other deliveries wait for a later turn instead of each waiting out a timeout.
    attempts_per_turn: int = 50
    rest_after_failure_seconds: float = 2.0
    # How often the dispatcher looks for due deliveries when no turn has ended meanwhile.
    dispatch_interval_seconds: float = 0.25
    endpoints_per_pass: int = 500  # per lane, in one pass of ``deliver_due_webhooks``
    user_agent: str = USER_AGENT

    @property
    def lease(self) -> dt.timedelta:
        """How long a worker holds an endpoint or a delivery: one attempt and its bookkeeping. If the
        worker dies meanwhile, the lease runs out and another worker sends the attempt."""
        return dt.timedelta(seconds=2 * self.timeout_seconds + 30)


# -- endpoints ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CreateWebhookEndpoint:
    url: str
    event_types: list[str]
    description: str | None = None


@dataclasses.dataclass(frozen=True)
class CreatedWebhookEndpoint:
    """A new endpoint and its signing secret: the one answer that ever shows the secret."""

    endpoint: WebhookEndpoint
    secret: str = dataclasses.field(repr=False)


def _ensure_marketplace(principal: Principal) -> None:
    if not principal.is_marketplace:
        raise Forbidden("Webhooks belong to marketplaces.", code="role_not_allowed")


def _secret_binding(endpoint_id: str, marketplace_id: str) -> bytes:
    """Binds a sealed secret to its row: copied onto another endpoint, it does not decrypt."""
    return f"webhook_endpoint|{endpoint_id}|{marketplace_id}".encode()


def create_webhook_endpoint(
    uow: UnitOfWork, command: CreateWebhookEndpoint, principal: Principal, settings: WebhookSettings
) -> CreatedWebhookEndpoint:
    """A new enabled endpoint with a new signing secret, returned in clear this once only."""
    _ensure_marketplace(principal)
    try:
        check_endpoint_url(
            command.url,
            require_https=settings.require_https,
            allow_private_hosts=settings.allow_private_hosts,
        )
    except EndpointUrlError as exc:
        raise ValidationFailed(str(exc), code=exc.code, param="url") from None
    unknown = unknown_event_types(command.event_types)
    if unknown:
        raise ValidationFailed(
            f"Unknown event type(s): {', '.join(unknown)}.",
            code="unknown_event_types",
            param="event_types",
            errors=[
                {"param": "event_types", "message": f"{kind!r} is not an event type."} for kind in unknown
            ],
            unknown_event_types=unknown,
            allowed_event_types=[*WEBHOOK_EVENT_TYPES, ALL_EVENT_TYPES],
        )
    marketplace_id = principal.client_id
    with uow:
        session = uow.session
        enabled = session.scalar(
            sa.select(sa.func.count())
            .select_from(WebhookEndpoint)
            .where(
                WebhookEndpoint.marketplace_id == marketplace_id,
                WebhookEndpoint.status == EndpointStatus.ENABLED,
            )
        )
        if enabled >= MAX_ENDPOINTS:
            raise Conflict(
                f"A marketplace may have {MAX_ENDPOINTS} enabled webhook endpoints; delete one first.",
                code="too_many_webhook_endpoints",
            )
        endpoint_id = new_id(ENDPOINT_PREFIX)
        secret = new_signing_secret()
        sealed = settings.cipher.encrypt(secret.encode(), _secret_binding(endpoint_id, marketplace_id))
        now = utcnow()
        endpoint = WebhookEndpoint(
            id=endpoint_id,
            marketplace_id=marketplace_id,
            url=command.url,
            description=command.description,
            event_types=normalise_event_types(command.event_types),
            status=EndpointStatus.ENABLED,
            secret_key_id=sealed.key_id,
            secret_wrapped_key=sealed.wrapped_key,
            secret_nonce=sealed.nonce,
            secret_ciphertext=sealed.ciphertext,
            created_at=now,
            updated_at=now,
        )
        session.add(endpoint)
        uow.commit()
    log.info(
        "webhook endpoint created",
        extra={"endpoint_id": endpoint.id, "marketplace_id": marketplace_id, "host": url_host(endpoint.url)},
    )
    return CreatedWebhookEndpoint(endpoint, secret)


def reveal_signing_secret(
    uow: UnitOfWork, endpoint_id: str, principal: Principal, settings: WebhookSettings
) -> str:
    """The endpoint's secret, for the replay of its creation answer only (an Idempotency-Key retry):
    saved answers hold no secret, so none is ever stored in clear."""
    _ensure_marketplace(principal)
    with uow:
        endpoint = _visible_endpoint(uow.session, endpoint_id, principal)
        return _open_secret(endpoint, settings.cipher)


def _open_secret(endpoint: WebhookEndpoint, cipher: EnvelopeCipher) -> str:
    sealed = SealedBlob(
        endpoint.secret_key_id, endpoint.secret_wrapped_key, endpoint.secret_nonce, endpoint.secret_ciphertext
    )
    return cipher.decrypt(sealed, _secret_binding(endpoint.id, endpoint.marketplace_id)).decode()


def _visible_endpoint(
    session: Session, endpoint_id: str, principal: Principal, *, lock: bool = False
) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=lock)
    # Another marketplace's endpoint gets the answer of a missing one: nothing leaks.
    if endpoint is None or endpoint.marketplace_id != principal.client_id:
        raise NotFound(f"No webhook endpoint {endpoint_id!r}.", param="endpoint_id")
    return endpoint


def get_webhook_endpoint(uow: UnitOfWork, endpoint_id: str, principal: Principal) -> WebhookEndpoint:
    _ensure_marketplace(principal)
    with uow:
        return _visible_endpoint(uow.session, endpoint_id, principal)


def list_webhook_endpoints(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int,
    starting_after: str | None,
    status: str = EndpointStatus.ENABLED,
) -> Page:
    _ensure_marketplace(principal)
    with uow:
        query = sa.select(WebhookEndpoint).where(
            WebhookEndpoint.marketplace_id == principal.client_id, WebhookEndpoint.status == status
        )
        return paginate(uow.session, query, WebhookEndpoint.id, limit=limit, starting_after=starting_after)


def disable_webhook_endpoint(uow: UnitOfWork, endpoint_id: str, principal: Principal) -> WebhookEndpoint:
    """Stop sending to the endpoint: its pending deliveries are canceled, its history stays. Idempotent."""
    _ensure_marketplace(principal)
    with uow:
        session = uow.session
        endpoint = _visible_endpoint(session, endpoint_id, principal, lock=True)
        if endpoint.status == EndpointStatus.ENABLED:
            now = utcnow()
            endpoint.status = EndpointStatus.DISABLED
            endpoint.disabled_at = endpoint.updated_at = now
            _cancel_pending_deliveries(session, endpoint.id, now)
            uow.commit()
            log.info("webhook endpoint disabled", extra={"endpoint_id": endpoint.id})
        return endpoint


def _cancel_pending_deliveries(session: Session, endpoint_id: str, now: dt.datetime) -> None:
    session.execute(
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.CANCELED, next_attempt_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )


# -- events ------------------------------------------------------------------------------------------


def record_webhook_event(
    session: Session,
    *,
    marketplace_id: str,
    event_type: str,
    object_type: str,
    object_id: str,
    snapshot: dict,
) -> None:
    """Record a change for the marketplace's webhooks, in the caller's transaction (the caller commits).

    The event gets the object's next sequence number (1, 2, 3…) and one pending delivery per enabled
    endpoint of the marketplace subscribed to ``event_type``; the worker sends them. The event is kept
    even when no endpoint wants it: the object's sequence numbers stay gapless whenever endpoints
    come and go, and the history of what was announced is complete (one small row per change).
    ``snapshot`` is the object as the API shows it (JSON types; datetimes become ISO-8601 UTC).
    """
    if event_type not in WEBHOOK_EVENT_TYPES:
        raise ValueError(f"{event_type!r} is not a webhook event type")
    now = utcnow()
    sequence = _next_sequence(session, object_id)
    event_id = new_id("evt")
    session.add(
        WebhookEvent(
            id=event_id,
            marketplace_id=marketplace_id,
            type=event_type,
            object_type=object_type,
            object_id=object_id,
            sequence=sequence,
            body=event_body(
                event_id=event_id, event_type=event_type, created=now, sequence=sequence, snapshot=snapshot
            ),
            created_at=now,
        )
    )
    endpoints = session.execute(
        sa.select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
            WebhookEndpoint.marketplace_id == marketplace_id, WebhookEndpoint.status == EndpointStatus.ENABLED
        )
    ).all()
    for endpoint_id, event_types in endpoints:
        if subscribes_to(event_types, event_type):
            session.add(
                WebhookDelivery(
                    id=new_id(DELIVERY_PREFIX),
                    event_id=event_id,
                    endpoint_id=endpoint_id,
                    marketplace_id=marketplace_id,
                    event_type=event_type,
                    status=DeliveryStatus.PENDING,
                    attempt_count=0,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )


def _next_sequence(session: Session, object_id: str) -> int:
    """Increment the object's counter row (created at 1): the increment locks the row until the
    caller commits, so concurrent transactions get consecutive numbers instead of a duplicate."""
    table = WebhookObjectSequence.__table__
    dialect: Any = postgresql if is_postgres(session) else sqlite
    statement = (
        dialect.insert(table)
        .values(object_id=object_id, last_sequence=1)
        .on_conflict_do_update(
            index_elements=[table.c.object_id], set_={"last_sequence": table.c.last_sequence + 1}
        )
        .returning(table.c.last_sequence)
    )
    return session.execute(statement).scalar_one()


# -- deliveries: reading -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeliveryWithAttempts:
    """A delivery and its attempts, oldest first: the detail answer."""

    delivery: WebhookDelivery
    attempts: list[WebhookDeliveryAttempt]

    def __getattr__(self, name: str) -> Any:
        if name == "delivery":
            raise AttributeError(name)
        return getattr(self.delivery, name)


def _visible_delivery(session: Session, delivery_id: str, principal: Principal) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.marketplace_id != principal.client_id:
        raise NotFound(f"No webhook delivery {delivery_id!r}.", param="delivery_id")
    return delivery


def get_webhook_delivery(uow: UnitOfWork, delivery_id: str, principal: Principal) -> DeliveryWithAttempts:
    _ensure_marketplace(principal)
    with uow:
        session = uow.session
        delivery = _visible_delivery(session, delivery_id, principal)
        attempts = session.scalars(
            sa.select(WebhookDeliveryAttempt)
            .where(WebhookDeliveryAttempt.delivery_id == delivery.id)
            .order_by(WebhookDeliveryAttempt.number)
        ).all()
        return DeliveryWithAttempts(delivery, list(attempts))


def list_webhook_deliveries(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int,
    starting_after: str | None,
    endpoint_id: str | None = None,
    event_type: str | None = None,
    event_id: str | None = None,
    status: str | None = None,
) -> Page:
    """The marketplace's deliveries, oldest first."""
    _ensure_marketplace(principal)
    with uow:
        query = sa.select(WebhookDelivery).where(WebhookDelivery.marketplace_id == principal.client_id)
        if endpoint_id is not None:
            _visible_endpoint(uow.session, endpoint_id, principal)
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
        if event_type is not None:
            query = query.where(WebhookDelivery.event_type == event_type)
        if event_id is not None:
            query = query.where(WebhookDelivery.event_id == event_id)
        if status is not None:
            query = query.where(WebhookDelivery.status == status)
        return paginate(uow.session, query, WebhookDelivery.id, limit=limit, starting_after=starting_after)


# -- deliveries: sending -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Outgoing:
    """One attempt, ready to send outside any transaction."""

    delivery_id: str
    event_id: str
    endpoint_id: str
    url: str = dataclasses.field(repr=False)
    body: bytes = dataclasses.field(repr=False)
    secret: str | None = dataclasses.field(repr=False)  # None: it could not be decrypted
    lease_token: str
    trigger: AttemptTrigger


def _lease_free(model: Any, now: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.or_(model.leased_until.is_(None), model.leased_until <= now)


def _lease(
    session: Session,
    model: Any,
    row_id: str,
    now: dt.datetime,
    settings: WebhookSettings,
    *criteria: sa.ColumnElement[bool],
) -> str | None:
    """Take the row's lease if nobody holds it: a conditional UPDATE, so of two workers racing for it
    (PostgreSQL re-checks the condition after the first one commits) exactly one gets it."""
    token = secrets.token_hex(8)
    result = session.execute(
        sa.update(model)
        .where(model.id == row_id, _lease_free(model, now), *criteria)
        .values(leased_until=now + settings.lease, lease_token=token)
        .execution_options(synchronize_session=False)
    )
    return token if result.rowcount == 1 else None


def _outgoing(
    session: Session,
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    lease_token: str,
    trigger: AttemptTrigger,
    settings: WebhookSettings,
) -> _Outgoing:
    body = session.scalar(sa.select(WebhookEvent.body).where(WebhookEvent.id == delivery.event_id))
    try:
        secret: str | None = _open_secret(endpoint, settings.cipher)
    except DecryptionError:
        log.error(
            "webhook signing secret cannot be decrypted",
            extra={"endpoint_id": endpoint.id, "key_id": endpoint.secret_key_id},
        )
        secret = None
    return _Outgoing(
        delivery.id,
        delivery.event_id,
        endpoint.id,
        endpoint.url,
        body.encode("utf-8"),
        secret,
        lease_token,
        trigger,
    )


def _send(settings: WebhookSettings, outgoing: _Outgoing) -> SendOutcome:
    if outgoing.secret is None:
        return SendOutcome(None, "signing_secret_unavailable", 0)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": settings.user_agent,
        SIGNATURE_HEADER: sign(outgoing.secret, outgoing.body),
        EVENT_ID_HEADER: outgoing.event_id,
        DELIVERY_ID_HEADER: outgoing.delivery_id,
    }
    try:
        return settings.sender.send(
            WebhookRequest(outgoing.url, outgoing.body, headers), settings.timeout_seconds
        )
    except Exception:  # noqa: BLE001 - a bug in sending is a failed attempt, recorded like any other
        log.exception("webhook sender failed", extra={"delivery_id": outgoing.delivery_id})
        return SendOutcome(None, "internal_error", 0)


def _record_attempt(
    uow: UnitOfWork, settings: WebhookSettings, outgoing: _Outgoing, outcome: SendOutcome, now: dt.datetime
) -> None:
    """Append the attempt, move the delivery on (delivered, retried later, or failed for good) and give
    its lease back.

    A manual attempt only ever improves a delivery: its success makes it delivered, its failure leaves
    the status and the automatic schedule as they were.
    """
    with uow:
        session = uow.session
        # The endpoint before the delivery: the order disabling an endpoint locks them in. NO KEY
        # UPDATE: transactions adding deliveries for it (their foreign key takes a key share) do not wait.
        endpoint = session.get(WebhookEndpoint, outgoing.endpoint_id, with_for_update={"key_share": True})
        _note_endpoint_health(endpoint, outcome.delivered, now, settings)
        delivery = session.get(WebhookDelivery, outgoing.delivery_id, with_for_update=True)
        number = delivery.attempt_count + 1
        session.add(
            WebhookDeliveryAttempt(
                delivery_id=delivery.id,
                number=number,
                trigger=outgoing.trigger,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                attempted_at=now,
            )
        )
        delivery.attempt_count = number
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        delivery.last_attempt_at = delivery.updated_at = now
        if outcome.delivered:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = delivery.failed_at = None
        elif outgoing.trigger == AttemptTrigger.AUTOMATIC and delivery.status == DeliveryStatus.PENDING:
            event_created = session.scalar(
                sa.select(WebhookEvent.created_at).where(WebhookEvent.id == delivery.event_id)
            )
            delivery.next_attempt_at = settings.retry.next_attempt(
                failed_attempts=number, now=now, event_created=event_created
            )
            if delivery.next_attempt_at is None:
                delivery.status = DeliveryStatus.FAILED
                delivery.failed_at = now
        if delivery.lease_token == outgoing.lease_token:
            delivery.leased_until = delivery.lease_token = None
        status, next_attempt_at = delivery.status, delivery.next_attempt_at
        uow.commit()
    log.log(
        logging.INFO if outcome.delivered else logging.WARNING,
        "webhook delivery attempt",
        extra={
            "delivery_id": outgoing.delivery_id,
            "event_id": outgoing.event_id,
            "endpoint_id": outgoing.endpoint_id,
            "host": url_host(outgoing.url),
            "attempt": number,
            "trigger": str(outgoing.trigger),
            "status_code": outcome.status_code,
            "error": outcome.error,
            "duration_ms": outcome.duration_ms,
            "delivery_status": str(status),
            "next_attempt_at": next_attempt_at.isoformat() if next_attempt_at else None,
        },
    )


def _note_endpoint_health(
    endpoint: WebhookEndpoint, delivered: bool, now: dt.datetime, settings: WebhookSettings
) -> None:
    """A success puts the endpoint back in the healthy lane; a failure puts it in the troubled one
    (failing since its first failure) and rests it."""
    if delivered:
        endpoint.failing_since = endpoint.resting_until = None
    else:
        endpoint.failing_since = endpoint.failing_since or now
        endpoint.resting_until = now + dt.timedelta(seconds=settings.rest_after_failure_seconds)


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

    def run(self, stop: threading.Event) -> None:
        """Dispatch until ``stop`` is set; then let the attempts in flight end and be recorded."""
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
                    wait = self._settings.dispatch_interval_seconds
                except Exception:  # noqa: BLE001 - the database away a moment must not end the worker
                    log.exception("webhook dispatch failed")
                    wait = DISPATCH_RETRY_SECONDS
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
            _lease_free(WebhookDelivery, now),
            _lease_free(WebhookEndpoint, now),
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
            token = _lease(uow.session, WebhookEndpoint, endpoint_id, clock(), settings)
            uow.commit()
        if token is None:
            return 0  # another worker is delivering to it
        try:
            while attempts < settings.attempts_per_turn and not stopping.is_set():
                outgoing = _claim_next_delivery(uow_factory(), settings, endpoint_id, token, clock())
                if outgoing is None:
                    break
                outcome = _send(settings, outgoing)
                _record_attempt(uow_factory(), settings, outgoing, outcome, clock())
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
) -> _Outgoing | None:
    """Lease the endpoint's longest-waiting due delivery and make it ready to send, or None."""
    with uow:
        session = uow.session
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or endpoint.lease_token != endpoint_token:
            return None  # our lease ran out and another worker took the endpoint over
        if endpoint.status != EndpointStatus.ENABLED:
            # Disabled while this delivery was being recorded: nothing more goes to it.
            _cancel_pending_deliveries(session, endpoint_id, now)
            uow.commit()
            return None
        pending = (WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now)
        for _ in range(3):  # a delivery leased by a manual retry meanwhile: take the next one
            delivery = session.scalar(
                sa.select(WebhookDelivery)
                .where(
                    WebhookDelivery.endpoint_id == endpoint_id, *pending, _lease_free(WebhookDelivery, now)
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(1)
            )
            if delivery is None:
                return None
            token = _lease(session, WebhookDelivery, delivery.id, now, settings, *pending)
            if token is not None:
                endpoint.leased_until = now + settings.lease
                outgoing = _outgoing(session, delivery, endpoint, token, AttemptTrigger.AUTOMATIC, settings)
                uow.commit()
                return outgoing
        return None


def retry_webhook_delivery(
    uow: UnitOfWork, delivery_id: str, principal: Principal, settings: WebhookSettings
) -> DeliveryWithAttempts:
    """Send the delivery again now, whatever its status, and answer it with the attempt recorded."""
    _ensure_marketplace(principal)
    with uow:
        session = uow.session
        delivery = _visible_delivery(session, delivery_id, principal)
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint.status != EndpointStatus.ENABLED:
            raise Conflict(
                "The delivery's endpoint was deleted; nothing is sent to it any more.",
                code="webhook_endpoint_disabled",
                param="delivery_id",
            )
        token = _lease(session, WebhookDelivery, delivery.id, utcnow(), settings)
        if token is None:
            raise Conflict(
                "An attempt of this delivery is being sent right now; retry once it is recorded.",
                code="webhook_delivery_in_progress",
                headers={"Retry-After": str(math.ceil(settings.timeout_seconds) + 1)},
            )
        outgoing = _outgoing(session, delivery, endpoint, token, AttemptTrigger.MANUAL, settings)
        uow.commit()
    _record_attempt(uow, settings, outgoing, _send(settings, outgoing), utcnow())
    return get_webhook_delivery(uow, delivery_id, principal)


# -- wiring ------------------------------------------------------------------------------------------

WEBHOOKS_EXTRA = "payments.webhooks"


def webhook_keyring(config: PaymentsConfig) -> MasterKeyRing:
    """Production: ``WEBHOOK_MASTER_KEYS`` ("kid:base64key,…", the last active). Development: key
    files under var/, a first key made on first use."""
    if config.webhook_master_keys:
        return MasterKeyRing.from_spec(config.webhook_master_keys)
    keyring = MasterKeyRing(config.webhook_keys_directory)
    keyring.ensure_key()
    return keyring


def make_webhook_settings(config: PaymentsConfig, *, sender: WebhookSender | None = None) -> WebhookSettings:
    production = config.is_production
    return WebhookSettings(
        cipher=EnvelopeCipher(webhook_keyring(config)),
        sender=sender or HttpWebhookSender(allow_private_networks=not production),
        timeout_seconds=config.webhook_timeout_seconds,
        concurrency=max(1, config.webhook_concurrency),
        troubled_concurrency=max(1, config.webhook_troubled_concurrency),
        retry=RetryPolicy(max_age=dt.timedelta(hours=config.webhook_max_age_hours)),
        require_https=production,
        allow_private_hosts=not production,
    )


def webhook_settings(context: ServiceContext) -> WebhookSettings:
    """The context's webhook settings, built from its config on first use (a request or the worker)."""
    settings = context.extras.get(WEBHOOKS_EXTRA)
    if settings is None:
        # setdefault: two first requests racing end up sharing one set.
        settings = context.extras.setdefault(WEBHOOKS_EXTRA, make_webhook_settings(context.config))
    return settings


def use_webhook_settings(context: ServiceContext, settings: WebhookSettings) -> WebhookSettings:
    """Replace the context's webhook settings (tests: a short timeout, another sender)."""
    context.extras[WEBHOOKS_EXTRA] = settings
    return settings
