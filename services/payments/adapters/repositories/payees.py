"""Loading and locking payees (artisans as payments knows them)."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import Payee, PayeeMarketplace, Payment
from shared.db import as_utc, first_row


def get(session: Session, artisan_id: str) -> Payee | None:
    return session.get(Payee, artisan_id)


def locked(session: Session, artisan_id: str) -> Payee | None:
    """The payee under a row lock (None if payments has no news of them yet)."""
    return session.scalar(sa.select(Payee).where(Payee.artisan_id == artisan_id).with_for_update())


def registered_with(session: Session, artisan_id: str, marketplace_id: str) -> bool:
    """Whether the artisan is registered with the marketplace."""
    return session.get(PayeeMarketplace, (artisan_id, marketplace_id)) is not None


class PayeeTerms(NamedTuple):
    """What a payment's checks read of its payee (never changed there): those columns of the row
    as they are, without the ORM's bookkeeping, since one is locked for every creation and
    confirmation."""

    artisan_id: str
    kyc_tier: int
    kyc_status: str
    restricted_at: dt.datetime | None
    tier_cap_amount: int
    currency: str
    ledger_balance: int

    @classmethod
    def of(cls, row: Any) -> PayeeTerms:
        terms = cls._make(row)
        # As ``UTCDateTime`` reads it, whatever time zone the connection reads it in.
        restricted_at = terms.restricted_at
        return terms if restricted_at is None else terms._replace(restricted_at=as_utc(restricted_at))


_PAYEES = Payee.__table__
_TERMS = [_PAYEES.c[name] for name in PayeeTerms._fields]
# One statement each, built once: the payee locked if registered with the marketplace, found by
# its id or by one of the marketplace's payments.
_REGISTERED = sa.select(*_TERMS).join(
    PayeeMarketplace,
    sa.and_(
        PayeeMarketplace.artisan_id == _PAYEES.c.artisan_id,
        PayeeMarketplace.marketplace_id == sa.bindparam("marketplace_id"),
    ),
)
_LOCKED_FOR_MARKETPLACE = _REGISTERED.where(
    _PAYEES.c.artisan_id == sa.bindparam("artisan_id")
).with_for_update(of=_PAYEES)
_LOCKED_FOR_PAYMENT = (
    _REGISTERED.join(
        Payment,
        sa.and_(
            Payment.artisan_id == _PAYEES.c.artisan_id,
            Payment.marketplace_id == sa.bindparam("marketplace_id"),
        ),
    )
    .where(Payment.id == sa.bindparam("payment_id"))
    .with_for_update(of=_PAYEES)
)


def locked_for_marketplace(session: Session, artisan_id: str, marketplace_id: str) -> PayeeTerms | None:
    """The payee's row, locked, if registered with the marketplace (None otherwise), in one
    statement: cap checks of one artisan's concurrent payments run one after the other."""
    row = first_row(
        session, _LOCKED_FOR_MARKETPLACE, {"artisan_id": artisan_id, "marketplace_id": marketplace_id}
    )
    return None if row is None else PayeeTerms.of(row)


def locked_for_payment(session: Session, payment_id: str, marketplace_id: str) -> PayeeTerms | None:
    """The row of the payee of the marketplace's payment, locked, if registered with the marketplace
    (None otherwise, and if the payment is not the marketplace's), in one statement."""
    row = first_row(
        session, _LOCKED_FOR_PAYMENT, {"payment_id": payment_id, "marketplace_id": marketplace_id}
    )
    return None if row is None else PayeeTerms.of(row)
