"""Payouts at the bank: handing them over, applying the bank's answers, and returning failed
payouts' funds.

A payout is saved ``pending`` with its entry and committed before the bank is called, so a crash or
a bank outage never loses one: ``sync_payouts`` (run by the worker) submits what the bank never
accepted (the bank deduplicates on our payout id, so nothing is sent twice) and polls what it has
not answered in time. The bank's answers (the reply to a submission, signed callbacks, polls) only
ever move a payout forward, so duplicates and late deliveries change nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from services.accounts.adapters import payouts
from services.accounts.adapters.orm import Payout
from services.accounts.domain.artisan_rules import BalanceRuleViolation
from services.accounts.domain.payouts import (
    FAILURE_CODES,
    FALLBACK_FAILURE_CODE,
    STATUS_FROM_BANK,
    PayoutStatus,
    PayoutStep,
    advances,
)
from services.accounts.domain.ports import Transfer, TransferRequest
from services.accounts.service_layer.payout_settings import PayoutSettings
from services.accounts.service_layer.payout_steps import payout_event, step_posting
from services.accounts.service_layer.posting import post, post_once, record_case
from shared.db import UnitOfWork, utcnow
from shared.errors import BadRequest, NotFound, Unauthenticated
from shared.partner_ports import InvalidCallback, PartnerError

log = logging.getLogger(__name__)


def submit_payout(uow: UnitOfWork, payout_id: str, settings: PayoutSettings) -> bool:
    """Hand one pending payout to its bank; on a failure it stays pending for the worker.

    No transaction is open while the bank is called (SQLite would hold its write lock meanwhile).
    Returns whether the bank accepted it.
    """
    with uow:
        payout = uow.session.get(Payout, payout_id)
        if payout is None or payout.status != PayoutStatus.PENDING:
            return False
        request = TransferRequest(
            reference=payout.id,
            rib=payout.rib,
            holder_name=payout.holder_name,
            amount=payout.amount,
            currency=payout.currency,
            callback_url=settings.callback_url,
        )
        partner_bank = payout.partner_bank
    try:
        transfer = settings.partners.get(partner_bank).request_transfer(request)
    except PartnerError as exc:
        level = logging.WARNING if exc.transient else logging.ERROR
        log.log(
            level,
            "payout not submitted; the worker will retry",
            extra={"payout_id": payout_id, "error": str(exc)},
        )
        return False
    with uow:
        payout = payouts.locked(uow.session, payout_id)
        if not _answer_matches(payout, transfer):
            return False
        _record_acceptance(payout, transfer)
        _apply_bank_status(uow, payout, transfer)
        uow.commit()
    return True


def _answer_matches(payout: Payout | None, transfer: Transfer) -> bool:
    """The bank's transfer is this payout: same reference, same bank transfer, same money."""
    if payout is None or transfer.reference != payout.id:
        return False
    if payout.partner_reference not in (None, transfer.partner_reference):
        return False
    if (transfer.amount, transfer.currency) != (payout.amount, payout.currency):
        log.error("bank reported another amount for a payout", extra={"payout_id": payout.id})
        return False
    return True


def _record_acceptance(payout: Payout, transfer: Transfer) -> None:
    if payout.partner_reference is None:
        payout.partner_reference = transfer.partner_reference
    payout.submitted_at = payout.submitted_at or utcnow()


def _apply_bank_status(uow: UnitOfWork, payout: Payout, transfer: Transfer) -> bool:
    """Move the payout to what the bank reports, if that is a step forward. Returns whether it moved."""
    target = STATUS_FROM_BANK.get(transfer.status)
    if target is None:
        log.warning(
            "unknown transfer status from the bank", extra={"payout_id": payout.id, "status": transfer.status}
        )
        return False
    if not advances(payout.status, target):
        return False
    now = utcnow()
    if payout.status == PayoutStatus.PENDING:
        # Any answer about the transfer means the bank has it: a payout goes through in_transit.
        payout.status = PayoutStatus.IN_TRANSIT
        payout.updated_at = now
        uow.add_event(payout_event("accounts.payout.in_transit", payout))
    if target == PayoutStatus.PAID:
        _settle_paid(uow, payout, now)
    elif target == PayoutStatus.FAILED:
        _settle_failed(uow, payout, transfer.failure_code, now)
    return True


def _settle_paid(uow: UnitOfWork, payout: Payout, now: dt.datetime) -> None:
    entry = post(uow, step_posting(payout, PayoutStep.PAID))
    payout.status = PayoutStatus.PAID
    payout.paid_at = payout.updated_at = now
    uow.add_event(payout_event("accounts.payout.paid", payout, entry_id=entry.id, paid_at=now.isoformat()))


def _settle_failed(uow: UnitOfWork, payout: Payout, failure_code: str | None, now: dt.datetime) -> None:
    if failure_code not in FAILURE_CODES:
        log.warning(
            "unknown failure code from the bank", extra={"payout_id": payout.id, "failure_code": failure_code}
        )
        failure_code = FALLBACK_FAILURE_CODE
    posting = step_posting(payout, PayoutStep.FAILED)
    entry_id: str | None = None
    try:
        with uow.session.begin_nested():
            entry_id = post(uow, posting).id
    except BalanceRuleViolation as violation:
        # The artisan's cap fell below their balance while the money was away (a KYC downgrade):
        # the funds wait in payouts_in_transit, with a case that says whose they are, until
        # return_waiting_payout_funds finds room for them (a tier upgrade, money paid out).
        log.warning(
            "failed payout's funds not returned yet", extra={"payout_id": payout.id, "rule": violation.rule}
        )
        record_case(uow, posting, violation).status = "waiting"
    payout.status = PayoutStatus.FAILED
    payout.failure_code = failure_code
    payout.failed_at = payout.updated_at = now
    uow.add_event(
        payout_event(
            "accounts.payout.failed",
            payout,
            failure_code=failure_code,
            funds_returned=entry_id is not None,
            entry_id=entry_id,
            failed_at=now.isoformat(),
        )
    )


def handle_callback(
    uow: UnitOfWork, bank_slug: str, headers: Mapping[str, str], raw_body: bytes, settings: PayoutSettings
) -> dict[str, Any]:
    """Verify and apply a bank callback. Idempotent: a duplicate or late callback changes nothing."""
    if bank_slug not in settings.partners:
        raise NotFound(f"No partner bank {bank_slug!r}.", param="bank")
    try:
        callback = settings.partners.get(bank_slug).parse_callback(headers, raw_body)
    except InvalidCallback as exc:
        log.warning("bank callback refused", extra={"bank": bank_slug, "reason": exc.reason})
        if exc.reason == "malformed":
            raise BadRequest(
                "The callback is signed but is not a transfer we can read.", code="malformed_callback"
            ) from None
        raise Unauthenticated(
            "The callback signature is missing, invalid or outside the replay window.",
            code="invalid_signature",
        ) from None
    transfer = callback.transfer
    with uow:
        payout = payouts.locked(uow.session, transfer.reference)
        if payout is None or payout.partner_bank != bank_slug or not _answer_matches(payout, transfer):
            raise NotFound("No payout with this reference.", param="reference")
        _record_acceptance(payout, transfer)
        applied = _apply_bank_status(uow, payout, transfer)
        uow.commit()
        return {"received": True, "applied": applied, "status": payout.status}


def sync_payouts(
    uow_factory: Callable[[], UnitOfWork],
    settings: PayoutSettings,
    *,
    now: dt.datetime | None = None,
    limit: int = 50,
) -> dict[str, int]:
    """Submit payouts the bank never accepted, and poll those it has not settled in time."""
    now = now or utcnow()
    with uow_factory() as uow:
        unsubmitted = payouts.unsubmitted_ids(uow.session, limit=limit)
        overdue = payouts.unanswered(uow.session, submitted_before=now - settings.poll_after, limit=limit)
    submitted = sum(submit_payout(uow_factory(), payout_id, settings) for payout_id in unsubmitted)
    settled = 0
    for payout_id, partner_bank, partner_reference in overdue:
        try:
            transfer = settings.partners.get(partner_bank).transfer(partner_reference)
        except PartnerError as exc:
            log.warning("could not poll a payout", extra={"payout_id": payout_id, "error": str(exc)})
            continue
        with uow_factory() as uow:
            payout = payouts.locked(uow.session, payout_id)
            if _answer_matches(payout, transfer) and _apply_bank_status(uow, payout, transfer):
                settled += 1
            uow.commit()
    return {"submitted": submitted, "polled": len(overdue), "settled": settled}


def return_waiting_payout_funds(uow_factory: Callable[[], UnitOfWork], *, limit: int = 200) -> int:
    """Give failed payouts' funds back to available where the artisan's cap now has room for them
    (the worker, each pass). Returns how many came back; their cases are resolved.

    One transaction per payout: holding one artisan's accounts while locking the next artisan's
    would deadlock with postings that lock those in the other order.
    """
    with uow_factory() as uow:
        case_ids = payouts.cases_waiting_for_funds(uow.session, limit=limit)
    return sum(_return_payout_funds(uow_factory(), case_id) for case_id in case_ids)


def _return_payout_funds(uow: UnitOfWork, case_id: str) -> bool:
    with uow:
        session = uow.session
        case = payouts.case_waiting_for_funds_locked(session, case_id)
        if case is None:
            return False  # returned meanwhile, or another worker is at it
        payout = session.get(Payout, case.cause_id)
        try:
            entry = post_once(uow, step_posting(payout, PayoutStep.FAILED))
        except BalanceRuleViolation:
            return False  # still no room
        case.mark_resolved(
            "funds_returned", at=utcnow(), **({"resolved_by_entry_id": entry.id} if entry is not None else {})
        )
        uow.commit()
    log.info("failed payout's funds returned", extra={"payout_id": payout.id})
    return True
