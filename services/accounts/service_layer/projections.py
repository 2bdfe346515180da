"""Accounts' projections of onboarding's events: artisans' KYC limits and payout destinations.

Events of one artisan arrive in order (the Kafka key is the artisan id), but replays and
redeliveries bring old news again: the inbox drops an event already applied, and ``kyc_version``
drops an older KYC change that slips past it. The version guard and what a KYC change does to
the limits are ``shared.kyc``'s, as in payments.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from services.accounts.adapters.orm import ArtisanLimits, PayoutDestination
from services.accounts.service_layer.ledger import (
    add_artisan_owner,
    make_on_artisan_registered,
    open_artisan_accounts,
)
from services.accounts.service_layer.personal_data import is_erased, on_artisan_erased
from shared.db import UnitOfWork
from shared.events import Event, parse_time
from shared.events.consumer import Handler
from shared.kyc import KYC_ACTIVE, KycRejection, TierChange, apply_rejection, apply_tier_change

log = logging.getLogger(__name__)


def _get_or_create_limits(
    uow: UnitOfWork, artisan_id: str, kyc_tier: int, tier_cap: dict[str, Any]
) -> ArtisanLimits:
    """The artisan's limits row; created at version 0 from the event's tier and cap if new."""
    limits = uow.session.get(ArtisanLimits, artisan_id)
    if limits is None:
        limits = ArtisanLimits(
            artisan_id=artisan_id,
            kyc_tier=kyc_tier,
            cap_amount=tier_cap["amount"],
            currency=tier_cap["currency"],
            kyc_status=KYC_ACTIVE,
            kyc_version=0,
        )
        uow.session.add(limits)
    return limits


def on_kyc_rejected(uow: UnitOfWork, event: Event) -> None:
    """Record the KYC status after a compliance rejection (unless older than the limits held)."""
    rejection = KycRejection.from_event(event)
    limits = uow.session.get(ArtisanLimits, rejection.artisan_id)
    if limits is None:
        log.warning("KYC rejection for an artisan without limits ignored", extra={"event_id": event.id})
        return
    apply_rejection(limits, rejection)


def on_bank_account_linked(uow: UnitOfWork, event: Event) -> None:
    """Store (or refresh) a destination for payouts, keeping at most one default per artisan."""
    data = event.data
    if is_erased(uow, data["artisan_id"]):
        # A replay of news older than the artisan's erasure: their bank details stay erased.
        log.info("bank account of an erased artisan ignored", extra={"event_id": event.id})
        return
    destination = uow.session.get(PayoutDestination, data["bank_account_id"])
    if destination is None:
        destination = PayoutDestination(bank_account_id=data["bank_account_id"])
        uow.session.add(destination)
    destination.artisan_id = data["artisan_id"]
    destination.rib = data["rib"]
    destination.iban = data["iban"]
    destination.bank_code = data["bank_code"]
    destination.bank_name = data["bank_name"]
    destination.holder_name = data["holder_name"]
    destination.is_default = data["is_default"]
    destination.linked_at = parse_time(data["linked_at"])
    # After the row is complete: the bulk update below flushes the session first.
    if data["is_default"]:
        _clear_other_defaults(uow, data["artisan_id"], keep=data["bank_account_id"])


def on_bank_account_default_changed(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    destination = uow.session.get(PayoutDestination, data["bank_account_id"])
    if destination is None or destination.artisan_id != data["artisan_id"]:
        # Cannot happen in partition order (the account's linked event comes first). Clearing the
        # other defaults would leave the artisan with none, so change nothing and keep a trace.
        log.warning("default change for an unknown payout destination ignored", extra={"event_id": event.id})
        return
    _clear_other_defaults(uow, data["artisan_id"], keep=data["bank_account_id"])
    destination.is_default = True


def _clear_other_defaults(uow: UnitOfWork, artisan_id: str, keep: str) -> None:
    uow.session.execute(
        sa.update(PayoutDestination)
        .where(PayoutDestination.artisan_id == artisan_id, PayoutDestination.bank_account_id != keep)
        .values(is_default=False)
    )


def make_handlers(currency: str) -> dict[str, Handler]:
    """The consumer's handlers; ``currency`` is the one the ledger opens artisans' accounts in."""
    open_ledger_on_registration = make_on_artisan_registered(currency)

    def on_artisan_registered(uow: UnitOfWork, event: Event) -> None:
        open_ledger_on_registration(uow, event)
        _get_or_create_limits(uow, event.data["artisan_id"], event.data["kyc_tier"], event.data["tier_cap"])

    def on_marketplace_linked(uow: UnitOfWork, event: Event) -> None:
        """A second marketplace registered the same person: let it read the balance too."""
        data = event.data
        add_artisan_owner(uow, data["artisan_id"], data["marketplace_id"])
        open_artisan_accounts(uow, data["artisan_id"], currency, cause_event_id=event.id)
        # The tier here only seeds limits we did not hold: the event has no version to compare.
        _get_or_create_limits(uow, data["artisan_id"], data["kyc_tier"], data["tier_cap"])

    def on_kyc_tier_changed(uow: UnitOfWork, event: Event) -> None:
        """Open or update the artisan's accounts and their cap."""
        change = TierChange.from_event(event)
        open_artisan_accounts(uow, change.artisan_id, currency, cause_event_id=event.id)
        limits = _get_or_create_limits(uow, change.artisan_id, change.kyc_tier, event.data["tier_cap"])
        if apply_tier_change(limits, change):
            limits.cap_amount = change.cap_amount
            limits.currency = change.currency

    return {
        "onboarding.artisan.registered": on_artisan_registered,
        "onboarding.artisan.marketplace_linked": on_marketplace_linked,
        "onboarding.artisan.kyc_tier_changed": on_kyc_tier_changed,
        "onboarding.artisan.kyc_rejected": on_kyc_rejected,
        "onboarding.bank_account.linked": on_bank_account_linked,
        "onboarding.bank_account.default_changed": on_bank_account_default_changed,
        "onboarding.artisan.erased": on_artisan_erased,
    }
