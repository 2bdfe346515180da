"""Marketplaces' settings in the database, and the platform's fee terms as a payment posting reads them.

A batch of payments reads a marketplace's fee terms once: they are remembered in the transaction
(forgotten on any rollback and when it ends, by the ledger session hooks), so a payment's posting
costs no extra round trip after the first of its marketplace in the batch. A fee changed meanwhile
applies from the next transaction, as if the batch had been read at its start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.accounts.adapters.ledger_session import remembered_fee_terms
from services.accounts.adapters.orm import MarketplaceSettings

# (basis points, fixed minor units): no settings row means no platform fee.
NO_FEE = (0, 0)


def settings(session: Session, marketplace_id: str) -> MarketplaceSettings | None:
    return session.get(MarketplaceSettings, marketplace_id)


def settings_locked(session: Session, marketplace_id: str) -> MarketplaceSettings | None:
    return session.scalar(
        sa.select(MarketplaceSettings)
        .where(MarketplaceSettings.marketplace_id == marketplace_id)
        .with_for_update()
    )


def settings_locked_or_new(
    session: Session, marketplace_id: str, currency: str, *, updated_by: str, updated_at: dt.datetime
) -> MarketplaceSettings:
    """The marketplace's settings row, locked until the transaction ends; added with the defaults
    (no fee, manual commission payouts) when there is none yet.

    With no row, ``FOR UPDATE`` locks nothing: two first changes at once would both insert the same
    key. The insert runs in a savepoint, so the one that loses the race reads (and locks) the
    winner's row instead of failing its whole transaction.
    """
    row = settings_locked(session, marketplace_id)
    if row is not None:
        return row
    row = MarketplaceSettings(
        marketplace_id=marketplace_id,
        platform_fee_bp=0,
        platform_fee_fixed=0,
        currency=currency,
        commission_payout_interval="manual",
        updated_by=updated_by,
        updated_at=updated_at,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except sa.exc.IntegrityError:
        found = settings_locked(session, marketplace_id)
        if found is None:  # the insert failed for another reason than the other's row
            raise
        return found
    return row


def fee_terms(session: Session, marketplace_id: str) -> tuple[int, int]:
    """The platform's fee on the marketplace's payments: (basis points, fixed minor units)."""
    remembered = remembered_fee_terms(session)
    if remembered is not None and marketplace_id in remembered:
        return remembered[marketplace_id]
    row = session.execute(
        sa.select(MarketplaceSettings.platform_fee_bp, MarketplaceSettings.platform_fee_fixed).where(
            MarketplaceSettings.marketplace_id == marketplace_id
        )
    ).first()
    terms = NO_FEE if row is None else (int(row.platform_fee_bp), int(row.platform_fee_fixed))
    if remembered is not None:
        remembered[marketplace_id] = terms
    return terms


def scheduled_ids(session: Session, *, after: str, limit: int) -> Sequence[str]:
    """Marketplaces whose commission is paid out on a schedule, in id order after ``after``."""
    return session.scalars(
        sa.select(MarketplaceSettings.marketplace_id)
        .where(
            MarketplaceSettings.commission_payout_interval != "manual",
            MarketplaceSettings.marketplace_id > after,
        )
        .order_by(MarketplaceSettings.marketplace_id)
        .limit(limit)
    ).all()
