"""What the ledger has not confirmed: succeeded payments whose entry accounts has not announced.

Accounts' completeness check reads this (a Hirfa service's token, scope ``payments:audit``) and
compares it with its own ledger: a payment missing there, long after it succeeded, is an event
the broker lost that nothing published again. Payments learns of each posting from
``accounts.ledger.entry_posted`` (``Payment.ledger_posted``), so what is listed here is normally
only what is still on its way: a few rows, through a partial index.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from services.payments.adapters.orm import Payment
from services.payments.domain.payments import PaymentStatus
from shared.db import UnitOfWork
from shared.pagination import Page, paginate


def unposted_payments(
    uow: UnitOfWork, *, succeeded_before: dt.datetime, limit: int, starting_after: str | None
) -> Page:
    """Succeeded payments not yet confirmed by the ledger that succeeded before
    ``succeeded_before``, by id (ids sort by creation time)."""
    query = sa.select(Payment).where(
        Payment.status == PaymentStatus.SUCCEEDED,
        Payment.ledger_posted.is_(False),
        Payment.succeeded_at < succeeded_before,
    )
    with uow:
        page = paginate(uow.session, query, Payment.id, limit=limit, starting_after=starting_after)
        page.data = [_unposted(payment) for payment in page.data]
        return page


def _unposted(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.id,
        "artisan_id": payment.artisan_id,
        "marketplace_id": payment.marketplace_id,
        # What payments.payment.succeeded told the ledger: the amount captured.
        "amount": {"amount": payment.amount_captured, "currency": payment.currency},
        "succeeded_at": payment.succeeded_at,
    }
