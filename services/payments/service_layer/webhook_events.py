"""Recording a change for the marketplace's webhooks, in the transaction of the change itself:
the event, with the object's next sequence number, and one pending delivery per subscribed endpoint.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.payments.adapters.orm import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookObjectSequence,
)
from services.payments.domain.webhooks import (
    WEBHOOK_EVENT_TYPES,
    DeliveryStatus,
    EndpointStatus,
    event_body,
    subscribes_to,
)
from shared.db import is_postgres, utcnow
from shared.ids import new_id

__all__ = ["WEBHOOK_EVENT_TYPES", "record_webhook_event"]

DELIVERY_PREFIX = "whd"


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
