"""A payout's steps as the ledger and the event stream record them.

created   Dr payee's account      / Cr payouts_in_transit       posting key payout:{id}:created
paid      Dr payouts_in_transit   / Cr bank:{source bank code}  posting key payout:{id}:paid
failed    Dr payouts_in_transit   / Cr payee's account          posting key payout:{id}:failed

The payee's account is the artisan's available balance, or for a commission payout the
marketplace's commission. Events: ``accounts.payout.*`` for artisans, ``accounts.commission_payout.*``
(the same steps, about a marketplace) for commission payouts.
"""

from __future__ import annotations

from typing import Any

from services.accounts.adapters.orm import Payout
from services.accounts.domain.payouts import PayeeType, PayoutStep, payee_account, step_lines
from services.accounts.domain.postings import Posting
from shared.db import utcnow
from shared.events import Event, make_event

_WHAT = {PayoutStep.CREATED: "to", PayoutStep.PAID: "paid to", PayoutStep.FAILED: "failed, returned from"}


def step_posting(payout: Payout, step: PayoutStep) -> Posting:
    """The payout's whole amount moved for one step of its life."""
    what = "Commission payout" if payout.payee_type == PayeeType.MARKETPLACE else "Payout"
    return Posting(
        cause="payout",
        cause_id=payout.id,
        posting_key=f"payout:{payout.id}:{step}",
        description=f"{what} {payout.id} {_WHAT[step]} bank {payout.bank_code} account …{payout.rib_last4}",
        currency=payout.currency,
        artisan_id=payout.artisan_id,
        lines=step_lines(
            step,
            payee=payee_account(payout.payee_type, payout.payee_id),
            source_bank_code=payout.source_bank_code,
            amount=payout.amount,
        ),
    )


def payout_event(event_type: str, payout: Payout, **extra: Any) -> Event:
    """``event_type`` names the artisan payout's event (``accounts.payout.paid``); a commission
    payout records its ``accounts.commission_payout.*`` twin."""
    if payout.payee_type == PayeeType.MARKETPLACE:
        return make_event(
            event_type.replace("accounts.payout.", "accounts.commission_payout.", 1),
            subject=payout.marketplace_id,
            data={
                "payout_id": payout.id,
                "marketplace_id": payout.marketplace_id,
                "amount": {"amount": payout.amount, "currency": payout.currency},
                "status": payout.status,
                "bank_code": payout.bank_code,
                "rib_last4": payout.rib_last4,
                "source": payout.source,
                "bank_reference": payout.partner_reference,
                "occurred_at": utcnow().isoformat(),
                **extra,
            },
        )
    return make_event(
        event_type,
        subject=payout.artisan_id,
        data={
            "payout_id": payout.id,
            "artisan_id": payout.artisan_id,
            "amount": {"amount": payout.amount, "currency": payout.currency},
            "status": payout.status,
            "bank_account_id": payout.bank_account_id,
            "bank_code": payout.bank_code,
            # Only the last digits leave the service: the event stream is read widely.
            "rib_last4": payout.rib_last4,
            "source": payout.source,
            "bank_reference": payout.partner_reference,
            "occurred_at": utcnow().isoformat(),
            **extra,
        },
    )
