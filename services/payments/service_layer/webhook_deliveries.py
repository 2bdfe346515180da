"""Webhook deliveries: what a marketplace reads of them, one attempt made ready, sent, and recorded,
and a marketplace's retry of one delivery by hand. The worker's ``WebhookDispatcher`` sends the
due ones (``webhook_dispatcher``).

An attempt is sent outside any transaction, under a lease on the delivery (a conditional UPDATE, so
two workers never send the same attempt); every attempt is recorded, a failure retried with backoff.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import (
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
    WebhookEvent,
)
from services.payments.domain.webhooks import (
    AttemptTrigger,
    DeliveryStatus,
    EndpointStatus,
    SendOutcome,
    WebhookRequest,
    url_host,
)
from services.payments.service_layer.ownership import require_marketplace, yours
from services.payments.service_layer.settings import (
    DELIVERY_ID_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    WebhookSettings,
)
from services.payments.service_layer.webhook_endpoints import open_secret, visible_endpoint
from shared.auth import Principal
from shared.crypto import DecryptionError
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, NotFound
from shared.pagination import Page, paginate
from shared.signatures import sign

log = logging.getLogger(__name__)


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
    return yours(
        session.get(WebhookDelivery, delivery_id),
        principal,
        NotFound(f"No webhook delivery {delivery_id!r}.", param="delivery_id"),
    )


def get_webhook_delivery(uow: UnitOfWork, delivery_id: str, principal: Principal) -> DeliveryWithAttempts:
    require_marketplace(principal)
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
    require_marketplace(principal)
    with uow:
        query = sa.select(WebhookDelivery).where(WebhookDelivery.marketplace_id == principal.client_id)
        if endpoint_id is not None:
            visible_endpoint(uow.session, endpoint_id, principal)
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
class Outgoing:
    """One attempt, ready to send outside any transaction."""

    delivery_id: str
    event_id: str
    endpoint_id: str
    url: str = dataclasses.field(repr=False)
    body: bytes = dataclasses.field(repr=False)
    secret: str | None = dataclasses.field(repr=False)  # None: it could not be decrypted
    lease_token: str
    trigger: AttemptTrigger


def lease_free(model: Any, now: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.or_(model.leased_until.is_(None), model.leased_until <= now)


def lease(
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
        .where(model.id == row_id, lease_free(model, now), *criteria)
        .values(leased_until=now + settings.lease, lease_token=token)
        .execution_options(synchronize_session=False)
    )
    return token if result.rowcount == 1 else None


def outgoing_attempt(
    session: Session,
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    lease_token: str,
    trigger: AttemptTrigger,
    settings: WebhookSettings,
) -> Outgoing:
    body = session.scalar(sa.select(WebhookEvent.body).where(WebhookEvent.id == delivery.event_id))
    try:
        secret: str | None = open_secret(endpoint, settings.cipher)
    except DecryptionError:
        log.error(
            "webhook signing secret cannot be decrypted",
            extra={"endpoint_id": endpoint.id, "key_id": endpoint.secret_key_id},
        )
        secret = None
    return Outgoing(
        delivery.id,
        delivery.event_id,
        endpoint.id,
        endpoint.url,
        body.encode("utf-8"),
        secret,
        lease_token,
        trigger,
    )


def send(settings: WebhookSettings, outgoing: Outgoing) -> SendOutcome:
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


def record_attempt(
    uow: UnitOfWork, settings: WebhookSettings, outgoing: Outgoing, outcome: SendOutcome, now: dt.datetime
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


def retry_webhook_delivery(
    uow: UnitOfWork, delivery_id: str, principal: Principal, settings: WebhookSettings
) -> DeliveryWithAttempts:
    """Send the delivery again now, whatever its status, and answer it with the attempt recorded."""
    require_marketplace(principal)
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
        token = lease(session, WebhookDelivery, delivery.id, utcnow(), settings)
        if token is None:
            raise Conflict(
                "An attempt of this delivery is being sent right now; retry once it is recorded.",
                code="webhook_delivery_in_progress",
                headers={"Retry-After": str(math.ceil(settings.timeout_seconds) + 1)},
            )
        outgoing = outgoing_attempt(session, delivery, endpoint, token, AttemptTrigger.MANUAL, settings)
        uow.commit()
    record_attempt(uow, settings, outgoing, send(settings, outgoing), utcnow())
    return get_webhook_delivery(uow, delivery_id, principal)
