"""What payments holds about one artisan, for onboarding's personal-data export (law 09-08).

Onboarding gathers an artisan's data from every service into one archive; this is payments'
part: the payee as payments knows them, the marketplaces they are registered with, and every
payment, refund and dispute made for them, whichever marketplace made it. Only a token onboarding
minted for itself (scope ``personal_data:collect``) reads it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.payments.adapters.orm import Dispute, PayeeMarketplace, Payment, Refund
from services.payments.adapters.repositories import payees
from services.payments.service_layer.representations import (
    dispute_snapshot,
    payment_snapshot,
    refund_snapshot,
)
from shared.db import UnitOfWork
from shared.kyc import can_be_paid


def artisan_personal_data(uow: UnitOfWork, artisan_id: str) -> dict[str, Any]:
    """Everything payments holds about ``artisan_id``; empty lists for an artisan it never paid."""
    with uow:
        session = uow.session
        payee = payees.get(session, artisan_id)
        marketplaces = session.scalars(
            sa.select(PayeeMarketplace.marketplace_id)
            .where(PayeeMarketplace.artisan_id == artisan_id)
            .order_by(PayeeMarketplace.marketplace_id)
        ).all()
        # Every payment is made by a marketplace the artisan is registered with: by marketplace and
        # artisan, the payments are ranges of an index, and their refunds and disputes follow them.
        theirs = sa.select(Payment.id).where(
            Payment.marketplace_id.in_(marketplaces), Payment.artisan_id == artisan_id
        )
        payments = session.scalars(
            sa.select(Payment)
            .where(Payment.marketplace_id.in_(marketplaces), Payment.artisan_id == artisan_id)
            .order_by(Payment.id)
        ).all()
        refunds = session.scalars(
            sa.select(Refund).where(Refund.payment_id.in_(theirs)).order_by(Refund.id)
        ).all()
        disputes = session.scalars(
            sa.select(Dispute).where(Dispute.payment_id.in_(theirs)).order_by(Dispute.id)
        ).all()
        return {
            "object": "personal_data",
            "service": "payments",
            "artisan_id": artisan_id,
            "payee": None
            if payee is None
            else {
                "kyc_tier": payee.kyc_tier,
                "tier_cap": {"amount": payee.tier_cap_amount, "currency": payee.currency},
                "kyc_status": payee.kyc_status,
                "can_accept_payments": can_be_paid(payee.kyc_tier, payee.kyc_status)
                and payee.restricted_at is None,
                "restricted_at": None if payee.restricted_at is None else payee.restricted_at.isoformat(),
                "payout_eligible": payee.payout_eligible,
                "updated_at": payee.updated_at.isoformat(),
            },
            "marketplaces": list(marketplaces),
            "payments": [payment_snapshot(payment) for payment in payments],
            "refunds": [refund_snapshot(refund) for refund in refunds],
            "disputes": [dispute_snapshot(dispute) for dispute in disputes],
        }
