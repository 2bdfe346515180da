"""The back office's reads of payments, across every marketplace: reversals to review, stuck
payments, disputes, failing webhook deliveries per marketplace, and the figures of a period.

Each list is a cursor page in id order (the marketplace's id for the webhook summary), served by an
index that starts with the column filtered on and ends with the cursor's (migration 0010).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import Dispute, Payment, WebhookDelivery
from services.payments.domain.back_office import REVERSAL_NEEDS_REVIEW, STUCK_STATUS
from services.payments.domain.webhooks import DeliveryStatus
from shared.pagination import Page, paginate

# When a payment was last asked of the gateway by its marketplace: the capture if one was asked
# for, else the confirmation (never ``updated_at``, which each timed-out poll of recovery moves on).
waiting_since = sa.func.coalesce(Payment.capture_requested_at, Payment.confirmed_at, Payment.created_at)


def reversals_to_review(session: Session, *, limit: int, starting_after: str | None) -> Page:
    query = sa.select(Payment).where(Payment.reversal_status == REVERSAL_NEEDS_REVIEW)
    return paginate(session, query, Payment.id, limit=limit, starting_after=starting_after)


def stuck_payments(
    session: Session, *, waiting_before: dt.datetime, limit: int, starting_after: str | None
) -> Page:
    """Payments still processing that were last asked of the gateway before ``waiting_before``."""
    query = sa.select(Payment).where(Payment.status == STUCK_STATUS, waiting_since < waiting_before)
    return paginate(session, query, Payment.id, limit=limit, starting_after=starting_after)


def disputes(session: Session, *, status: str | None, limit: int, starting_after: str | None) -> Page:
    query = sa.select(Dispute)
    if status is not None:
        query = query.where(Dispute.status == status)
    return paginate(session, query, Dispute.id, limit=limit, starting_after=starting_after)


@dataclasses.dataclass(frozen=True)
class WebhookFailures:
    """One marketplace's deliveries that did not get through: given up on, or failed and retrying."""

    marketplace_id: str
    failed: int
    retrying: int
    last_attempt_at: dt.datetime | None


def webhook_failures(session: Session, *, limit: int, starting_after: str | None) -> Page:
    """Per marketplace, in marketplace id order (the cursor): deliveries given up on (``failed``)
    and those waiting for another attempt after a failed one (pending, attempted at least once:
    every attempt that did not fail would have delivered it)."""
    delivery = WebhookDelivery
    failed = sa.func.sum(sa.case((delivery.status == DeliveryStatus.FAILED, 1), else_=0))
    retrying = sa.func.sum(sa.case((delivery.status == DeliveryStatus.PENDING, 1), else_=0))
    query = (
        sa.select(delivery.marketplace_id, failed, retrying, sa.func.max(delivery.last_attempt_at))
        .where(
            sa.or_(
                delivery.status == DeliveryStatus.FAILED,
                sa.and_(delivery.status == DeliveryStatus.PENDING, delivery.attempt_count > 0),
            )
        )
        .group_by(delivery.marketplace_id)
        .order_by(delivery.marketplace_id)
    )
    if starting_after:
        query = query.where(delivery.marketplace_id > starting_after)
    rows = [
        WebhookFailures(marketplace_id, int(failed_count), int(retrying_count), last_attempt_at)
        for marketplace_id, failed_count, retrying_count, last_attempt_at in session.execute(
            query.limit(limit + 1)
        )
    ]
    has_more = len(rows) > limit
    rows = rows[:limit]
    return Page(data=rows, has_more=has_more, next_cursor=rows[-1].marketplace_id if has_more else None)


@dataclasses.dataclass(frozen=True)
class PaymentFigures:
    """How many payments of one method, status and currency, and what they captured."""

    payment_method_type: str
    status: str
    currency: str
    count: int
    captured: int


def payment_figures(
    session: Session, *, created_gte: dt.datetime, created_lt: dt.datetime
) -> list[PaymentFigures]:
    """The payments created in ``[created_gte, created_lt)``, counted by method, status and currency
    (a range read of the ``created_at`` index, summed in the database)."""
    query: sa.Select[Any] = (
        sa.select(
            Payment.payment_method_type,
            Payment.status,
            Payment.currency,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(Payment.amount_captured), 0),
        )
        .where(Payment.created_at >= created_gte, Payment.created_at < created_lt)
        .group_by(Payment.payment_method_type, Payment.status, Payment.currency)
    )
    return [
        PaymentFigures(method, status, currency, int(count), int(captured))
        for method, status, currency, count, captured in session.execute(query)
    ]
