"""Loading and locking refunds, and the disputes that stand in their way."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import Dispute, Refund
from services.payments.domain.disputes import BLOCKING_REFUNDS
from services.payments.domain.gateway import RefundStatus


def get(session: Session, refund_id: str) -> Refund | None:
    return session.get(Refund, refund_id)


def locked(session: Session, refund_id: str) -> Refund | None:
    return session.scalar(
        sa.select(Refund)
        .where(Refund.id == refund_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def payment_id_of(session: Session, refund_id: str) -> str | None:
    return session.scalar(sa.select(Refund.payment_id).where(Refund.id == refund_id))


def created_with_key(session: Session, marketplace_id: str, creation_key: str) -> Refund | None:
    """The marketplace's refund created with this Idempotency-Key, if any."""
    return session.scalar(
        sa.select(Refund).where(Refund.marketplace_id == marketplace_id, Refund.creation_key == creation_key)
    )


def pending_totals(session: Session, payment_id: str) -> tuple[int, int]:
    """``(amount, commission)`` of the payment's refunds still pending at the gateway."""
    row = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(Refund.amount), 0),
            sa.func.coalesce(sa.func.sum(Refund.application_fee_refunded), 0),
        ).where(Refund.payment_id == payment_id, Refund.status == RefundStatus.PENDING)
    ).one()
    return int(row[0]), int(row[1])


def dispute_blocking_refunds(session: Session, payment_id: str) -> Dispute | None:
    """The payment's first dispute that is open or lost, if any."""
    return session.scalar(
        sa.select(Dispute)
        .where(Dispute.payment_id == payment_id, Dispute.status.in_(sorted(BLOCKING_REFUNDS)))
        .order_by(Dispute.id)
        .limit(1)
    )
