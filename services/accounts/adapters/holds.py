"""Pending holds (a payment's share held before release) and dispute holds in the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters.orm import DisputeHold, PendingHold


def pending_hold_locked(session: Session, payment_id: str) -> PendingHold | None:
    return session.scalar(
        sa.select(PendingHold).where(PendingHold.payment_id == payment_id).with_for_update()
    )


def dispute_hold_locked(session: Session, dispute_id: str) -> DisputeHold | None:
    return session.scalar(
        sa.select(DisputeHold).where(DisputeHold.dispute_id == dispute_id).with_for_update()
    )


def due_pending_holds_locked(
    session: Session, now: dt.datetime, *, after: str, limit: int
) -> Sequence[PendingHold]:
    """Up to ``limit`` holds past their release time with something left to release, by payment id
    after ``after``; locked, skipping those another worker holds."""
    return session.scalars(
        sa.select(PendingHold)
        .where(
            PendingHold.release_at <= now,
            PendingHold.held - PendingHold.released - PendingHold.taken > 0,
            PendingHold.payment_id > after,
        )
        .order_by(PendingHold.payment_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
