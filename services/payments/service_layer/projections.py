"""Keeping payments' view of artisans up to date from onboarding's events."""

from __future__ import annotations

import datetime as dt

from services.payments.adapters.orm import Payee, PayeeMarketplace
from shared.auth import Principal
from shared.db import UnitOfWork
from shared.errors import NotFound
from shared.events import Event


def _event_time(event: Event) -> dt.datetime:
    return dt.datetime.fromisoformat(event.time.replace("Z", "+00:00"))


def on_artisan_registered(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    as_of = _event_time(event)
    payee = uow.session.get(Payee, data["artisan_id"])
    if payee is None:
        payee = Payee(
            artisan_id=data["artisan_id"],
            kyc_tier=data["kyc_tier"],
            tier_cap_amount=data["tier_cap"]["amount"],
            currency=data["tier_cap"]["currency"],
            payout_eligible=False,
            as_of=as_of,
        )
        uow.session.add(payee)
    if uow.session.get(PayeeMarketplace, (data["artisan_id"], data["marketplace_id"])) is None:
        uow.session.add(PayeeMarketplace(artisan_id=data["artisan_id"], marketplace_id=data["marketplace_id"]))


HANDLERS = {"onboarding.artisan.registered": on_artisan_registered}


def get_payee(uow: UnitOfWork, artisan_id: str, principal: Principal) -> dict:
    with uow:
        payee = uow.session.get(Payee, artisan_id)
        visible = payee is not None and (
            not principal.is_marketplace
            or uow.session.get(PayeeMarketplace, (artisan_id, principal.client_id)) is not None
        )
        if not visible:
            raise NotFound(f"No payee {artisan_id!r} (yet).", param="artisan_id")
        return {
            "artisan_id": payee.artisan_id,
            "kyc_tier": payee.kyc_tier,
            "tier_cap": {"amount": payee.tier_cap_amount, "currency": payee.currency},
            "can_accept_payments": payee.kyc_tier >= 1,
            "payout_eligible": payee.payout_eligible,
            "updated_at": payee.updated_at,
        }
