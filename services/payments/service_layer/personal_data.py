"""An artisan's personal data in payments (law 09-08): their part of the export, and its erasure.

Onboarding gathers an artisan's data from every service into one archive; this is payments'
part: the payee as payments knows them, the marketplaces they are registered with, and every
payment, refund and dispute made for them, whichever marketplace made it. Only a token onboarding
minted for itself (scope ``personal_data:collect``) reads it.

Once the anti-money-laundering duty to keep them is over, ``onboarding.artisan.erased`` erases
what in those records is about a person (descriptions, metadata, order references, addresses);
amounts, statuses and dates stay, under the artisan id that names no one any more.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from services.payments.adapters.orm import Dispute, PayeeMarketplace, Payment, Refund, WebhookEvent
from services.payments.adapters.repositories import payees
from services.payments.service_layer.representations import (
    dispute_snapshot,
    payment_snapshot,
    refund_snapshot,
)
from shared.db import UnitOfWork, utcnow
from shared.events import Event
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
        theirs = _payment_ids(marketplaces, artisan_id)
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


def _payment_ids(marketplaces: list[str] | Any, artisan_id: str) -> sa.Select[tuple[str]]:
    return sa.select(Payment.id).where(
        Payment.marketplace_id.in_(marketplaces), Payment.artisan_id == artisan_id
    )


def on_artisan_erased(uow: UnitOfWork, event: Event) -> None:
    """Erase from the artisan's payments and refunds what is about a person: what marketplaces
    wrote (descriptions, metadata, order references) and where buyers were sent back to."""
    session = uow.session
    artisan_id = event.data["artisan_id"]
    marketplaces = list(
        session.scalars(
            sa.select(PayeeMarketplace.marketplace_id).where(PayeeMarketplace.artisan_id == artisan_id)
        )
    )
    now = utcnow()
    session.execute(
        sa.update(Payment)
        .where(Payment.marketplace_id.in_(marketplaces), Payment.artisan_id == artisan_id)
        .values(description=None, metadata_json="{}", order_reference=None, return_url=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sa.update(Refund)
        .where(Refund.payment_id.in_(_payment_ids(marketplaces, artisan_id)))
        .values(metadata_json="{}", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    # The webhooks told of them carry the same fields, as sent: erased there too.
    refund_ids = sa.select(Refund.id).where(Refund.payment_id.in_(_payment_ids(marketplaces, artisan_id)))
    events = session.scalars(
        sa.select(WebhookEvent).where(
            WebhookEvent.marketplace_id.in_(marketplaces),
            sa.or_(
                WebhookEvent.object_id.in_(_payment_ids(marketplaces, artisan_id)),
                WebhookEvent.object_id.in_(refund_ids),
            ),
        )
    )
    for webhook in events:
        body = json.loads(webhook.body)
        snapshot = body.get("data", {}).get("object", {})
        for name, erased in _ERASED_FIELDS.items():
            if name in snapshot:
                snapshot[name] = erased
        webhook.body = json.dumps(body, separators=(",", ":"), ensure_ascii=False)


# What an erased artisan's payment or refund says instead, field by field, wherever it is kept.
_ERASED_FIELDS: dict[str, Any] = {
    "description": None,
    "metadata": {},
    "order_reference": None,
    "return_url": None,
}
