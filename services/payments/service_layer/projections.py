"""Keeping payments' view of artisans up to date from onboarding's events.

Events of one artisan arrive in order (the Kafka key is the artisan id), but replays and
redeliveries bring old news again: the inbox drops an event already applied, and ``kyc_version``
drops an older KYC change that slips past it (a replay of a different event id, for instance). The
version guard and what a KYC change does to the payee are ``shared.kyc``'s, as in accounts.
"""

from __future__ import annotations

import logging
from typing import Any

from services.payments.adapters.orm import Payee, PayeeMarketplace
from services.payments.adapters.repositories import payees, payments
from services.payments.service_layer.personal_data import on_artisan_erased
from shared.auth import Principal
from shared.db import UnitOfWork
from shared.errors import NotFound
from shared.events import Event, parse_time
from shared.kyc import KYC_ACTIVE, KycRejection, TierChange, apply_rejection, apply_tier_change, can_be_paid

log = logging.getLogger(__name__)


def _get_or_create_payee(uow: UnitOfWork, event: Event, tier_cap: dict[str, Any]) -> Payee:
    """The artisan's payee row; created from the event's tier and cap if this is the first news of them."""
    data = event.data
    payee = payees.get(uow.session, data["artisan_id"])
    if payee is None:
        payee = Payee(
            artisan_id=data["artisan_id"],
            kyc_tier=data["kyc_tier"],
            tier_cap_amount=tier_cap["amount"],
            currency=tier_cap["currency"],
            payout_eligible=False,
            kyc_status=KYC_ACTIVE,
            kyc_version=0,
            as_of=parse_time(event.time),
        )
        uow.session.add(payee)
    return payee


def _link_marketplace(uow: UnitOfWork, artisan_id: str, marketplace_id: str) -> None:
    if not payees.registered_with(uow.session, artisan_id, marketplace_id):
        uow.session.add(PayeeMarketplace(artisan_id=artisan_id, marketplace_id=marketplace_id))


def on_artisan_registered(uow: UnitOfWork, event: Event) -> None:
    _get_or_create_payee(uow, event, event.data["tier_cap"])
    _link_marketplace(uow, event.data["artisan_id"], event.data["marketplace_id"])


def on_marketplace_linked(uow: UnitOfWork, event: Event) -> None:
    """A second marketplace registered the same person: let it see the payee too.

    The event's tier only seeds a payee we did not know; it carries no ``kyc_version``, so it must
    not overwrite what tier events told us.
    """
    _get_or_create_payee(uow, event, event.data["tier_cap"])
    _link_marketplace(uow, event.data["artisan_id"], event.data["marketplace_id"])


def on_kyc_tier_changed(uow: UnitOfWork, event: Event) -> None:
    change = TierChange.from_event(event)
    # Created without a marketplace link: only a registered or marketplace_linked event says who
    # may see it. Version 0 on a new row, so the change below applies.
    payee = _get_or_create_payee(uow, event, event.data["tier_cap"])
    if apply_tier_change(payee, change):
        payee.tier_cap_amount = change.cap_amount
        payee.currency = change.currency
        payee.as_of = parse_time(event.time)


def on_kyc_rejected(uow: UnitOfWork, event: Event) -> None:
    """Record the KYC status after a compliance rejection (unless older than what the payee holds)."""
    rejection = KycRejection.from_event(event)
    payee = payees.get(uow.session, rejection.artisan_id)
    if payee is None:
        # Cannot happen in partition order (registration comes first), and without a cap there is
        # no payee row to create: keep a trace for operators rather than guess.
        log.warning("KYC rejection for an unknown payee ignored", extra={"event_id": event.id})
        return
    if apply_rejection(payee, rejection):
        payee.as_of = max(payee.as_of, parse_time(event.time))


def on_bank_account_linked(uow: UnitOfWork, event: Event) -> None:
    """A usable bank account exists: the artisan can now receive payouts."""
    payee = payees.get(uow.session, event.data["artisan_id"])
    if payee is None:
        log.warning("bank account linked for an unknown payee ignored", extra={"event_id": event.id})
        return
    payee.payout_eligible = True


def on_processing_restricted(uow: UnitOfWork, event: Event) -> None:
    """The artisan asked for erasure: no new payment to them from now on (``payee_restricted``)."""
    payee = payees.locked(uow.session, event.data["artisan_id"])
    if payee is None:
        # Payments never heard of them, so there is nothing to pay them with nor to hide.
        log.info("restriction of an unknown payee: nothing to restrict", extra={"event_id": event.id})
        return
    if payee.restricted_at is None:
        payee.restricted_at = parse_time(event.data["restricted_at"])


def on_ledger_entry_posted(uow: UnitOfWork, event: Event) -> None:
    """Keep what the ledger holds for the artisan, against which new payments meet the tier cap.

    Artisan account lines are signed (debit positive) and artisan accounts are credit-normal, so the
    artisan's holding moves by minus their sum. Each entry comes once (the inbox); a payment's own
    entry also stops counting it as "on its way" (``Payment.ledger_posted``), in the same transaction.
    """
    data = event.data
    artisan_id = data.get("artisan_id")
    if not artisan_id:
        return
    delta = -sum(line["amount"] for line in data["lines"] if line["owner_type"] == "artisan")
    payee = payees.locked(uow.session, artisan_id)
    if payee is None:
        # The two topics are not ordered with each other (a replay, say): keep the ledger's news on
        # a tier-0 payee, which the artisan's onboarding events then complete.
        payee = Payee(
            artisan_id=artisan_id,
            kyc_tier=0,
            tier_cap_amount=0,
            currency=data["lines"][0]["currency"],
            payout_eligible=False,
            kyc_status=KYC_ACTIVE,
            kyc_version=0,
            ledger_balance=0,
            as_of=parse_time(data["posted_at"]),
        )
        uow.session.add(payee)
    payee.ledger_balance += delta
    if data["cause"] == "payment":
        payments.mark_ledger_posted(uow.session, data["cause_id"])


HANDLERS = {
    "onboarding.artisan.registered": on_artisan_registered,
    "onboarding.artisan.marketplace_linked": on_marketplace_linked,
    "onboarding.artisan.kyc_tier_changed": on_kyc_tier_changed,
    "onboarding.artisan.kyc_rejected": on_kyc_rejected,
    "onboarding.bank_account.linked": on_bank_account_linked,
    "onboarding.artisan.processing_restricted": on_processing_restricted,
    "onboarding.artisan.erased": on_artisan_erased,
    "accounts.ledger.entry_posted": on_ledger_entry_posted,
}


def get_payee(uow: UnitOfWork, artisan_id: str, principal: Principal) -> dict:
    with uow:
        payee = payees.get(uow.session, artisan_id)
        visible = payee is not None and (
            not principal.is_marketplace
            or (
                # A restricted artisan (an erasure request) is shown to marketplaces no more.
                payee.restricted_at is None
                and payees.registered_with(uow.session, artisan_id, principal.client_id)
            )
        )
        if not visible:
            raise NotFound(f"No payee {artisan_id!r} (yet).", param="artisan_id")
        return {
            "artisan_id": payee.artisan_id,
            "kyc_tier": payee.kyc_tier,
            "tier_cap": {"amount": payee.tier_cap_amount, "currency": payee.currency},
            "kyc_status": payee.kyc_status,
            "kyc_version": payee.kyc_version,
            "can_accept_payments": can_be_paid(payee.kyc_tier, payee.kyc_status)
            and payee.restricted_at is None,
            "payout_eligible": payee.payout_eligible,
            "updated_at": payee.updated_at,
        }
