"""Loading and locking payees (artisans as payments knows them)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import Payee, PayeeMarketplace


def locked_for_marketplace(session: Session, artisan_id: str, marketplace_id: str) -> Payee | None:
    """The payee, locked, if registered with the marketplace (None otherwise): cap checks of one
    artisan's concurrent payments run one after the other."""
    if session.get(PayeeMarketplace, (artisan_id, marketplace_id)) is None:
        return None
    return session.scalar(sa.select(Payee).where(Payee.artisan_id == artisan_id).with_for_update())
