"""Loading and locking payees (artisans as payments knows them)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import Payee, PayeeMarketplace


def get(session: Session, artisan_id: str) -> Payee | None:
    return session.get(Payee, artisan_id)


def locked(session: Session, artisan_id: str) -> Payee | None:
    """The payee under a row lock (None if payments has no news of them yet)."""
    return session.scalar(sa.select(Payee).where(Payee.artisan_id == artisan_id).with_for_update())


def registered_with(session: Session, artisan_id: str, marketplace_id: str) -> bool:
    """Whether the artisan is registered with the marketplace."""
    return session.get(PayeeMarketplace, (artisan_id, marketplace_id)) is not None


def locked_for_marketplace(session: Session, artisan_id: str, marketplace_id: str) -> Payee | None:
    """The payee, locked, if registered with the marketplace (None otherwise): cap checks of one
    artisan's concurrent payments run one after the other."""
    if not registered_with(session, artisan_id, marketplace_id):
        return None
    return locked(session, artisan_id)
