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


# One statement, built once: the payee locked if registered with the marketplace.
_LOCKED_FOR_MARKETPLACE = (
    sa.select(Payee)
    .join(
        PayeeMarketplace,
        sa.and_(
            PayeeMarketplace.artisan_id == Payee.artisan_id,
            PayeeMarketplace.marketplace_id == sa.bindparam("marketplace_id"),
        ),
    )
    .where(Payee.artisan_id == sa.bindparam("artisan_id"))
    .with_for_update(of=Payee)
    .execution_options(populate_existing=True)
)


def locked_for_marketplace(session: Session, artisan_id: str, marketplace_id: str) -> Payee | None:
    """The payee, locked, if registered with the marketplace (None otherwise), in one statement:
    cap checks of one artisan's concurrent payments run one after the other."""
    return session.scalar(
        _LOCKED_FOR_MARKETPLACE, {"artisan_id": artisan_id, "marketplace_id": marketplace_id}
    )
