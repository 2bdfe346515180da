"""Applying what the gateway says to a payment: a call's answer, a callback's snapshot, our own
read of its record. The domain decides the move (``snapshot_move``); this carries it out on the
locked row, records the attempts, and announces the change in the same transaction.

Snapshots arrive duplicated, stale and out of order; none of them moves a payment backwards. Money
the gateway turns out to hold for a payment we already called failed or canceled is marked to be
given back (``stray_charges``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from typing import Any

from services.payments.adapters.orm import Payment
from services.payments.adapters.repositories import payments
from services.payments.domain.gateway import GatewayTransaction
from services.payments.domain.payments import (
    FAILURE_MESSAGES,
    PaymentPosition,
    PaymentStatus,
    Reversal,
    SnapshotVerdict,
    can_move,
    counts_as_new_charge,
    failure_for,
    snapshot_move,
)
from services.payments.service_layer.announcements import payment_changed, payment_reversal_changed
from services.payments.service_layer.gateway_calls import FRESH_READS, CallOutcome, attempt_row
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict

log = logging.getLogger(__name__)


def settle_call(
    uow: UnitOfWork,
    payment_id: str,
    outcome: CallOutcome,
    *,
    refused_fails: bool,
    cancellation_reason: str | None = None,
    earlier: Sequence[CallOutcome] = (),
    stray_charge_check_after: dt.timedelta | None = None,
) -> Payment:
    """Record the attempts and apply what the gateway answered, in one transaction.

    ``outcome`` is an answer (applied if it is news), a refusal (``refused_fails``: the payment
    request itself was refused, so nothing was charged), an unknown outcome (the payment waits), or
    no answer and no error: a lookup by our reference that found nothing. ``earlier``: calls made
    before it (a refused capture, say, before the read of the gateway's record that ``outcome`` is),
    recorded only: every call is an attempt row, whatever replaced it. ``stray_charge_check_after``:
    when a payment failed because the lookup found nothing is looked up once more (only recovery
    looks up by our reference; every other call names the gateway's transaction).
    """
    with uow:
        payment = payments.locked(uow.session, payment_id)
        for made in (*earlier, outcome):
            uow.session.add(attempt_row(made, payment_id=payment.id, gateway=payment.gateway))
        now = utcnow()
        payment.gateway_checked_at = now
        if outcome.answer is not None:
            apply_transaction(
                uow,
                payment,
                outcome.answer,
                cancellation_reason=cancellation_reason,
                fresh_read=outcome.operation in FRESH_READS,
            )
        elif outcome.error is None and payment.status == PaymentStatus.PROCESSING:
            # A lookup by our reference found nothing: the gateway never recorded the payment.
            fail(uow, payment, "processing_error", FAILURE_MESSAGES["processing_error"], now)
            if stray_charge_check_after is not None:
                # Unless the request was still queued there and charges the buyer later: should its
                # callback be lost too, only a second look would find it (``check_for_stray_charge``).
                payment.stray_charge_check_at = now + stray_charge_check_after
        elif outcome.refused and refused_fails and payment.status == PaymentStatus.PROCESSING:
            # A 4xx: the gateway did nothing (an unknown token, say). Nothing was charged.
            code = outcome.error.code or "gateway_refused"
            fail(uow, payment, "gateway_refused", f"{FAILURE_MESSAGES['gateway_refused']} ({code})", now)
        elif outcome.unknown and payment.status == PaymentStatus.PROCESSING:
            # Timeout or 5xx: the charge may have gone through. Stay processing; recovery will tell.
            payment.updated_at = now
            payment_changed(uow, payment)
        uow.commit()
        return payment


def position(payment: Payment) -> PaymentPosition:
    return PaymentPosition(
        id=payment.id,
        status=payment.status,
        capture_method=payment.capture_method,
        gateway_reference=payment.gateway_reference,
        gateway_updated_at=payment.gateway_updated_at,
        capturing=payment.capture_requested_at is not None,
    )


def apply_transaction(
    uow: UnitOfWork,
    payment: Payment,
    transaction: GatewayTransaction,
    *,
    cancellation_reason: str | None = None,
    fresh_read: bool = False,
) -> bool:
    """Move a (locked) payment to what a gateway snapshot says, if that is news. Returns whether it moved.

    Safe to call with duplicated, stale or out-of-order snapshots (see ``snapshot_move``).
    """
    move = snapshot_move(position(payment), transaction, fresh_read=fresh_read)
    verdict = move.verdict
    if verdict is SnapshotVerdict.FOREIGN:
        log.error("gateway transaction for another payment", extra={"payment_id": payment.id})
        return False
    if verdict is SnapshotVerdict.SECOND_TRANSACTION:
        log.error("a second gateway transaction for one payment", extra={"payment_id": payment.id})
        return False
    if payment.gateway_reference is None:
        payment.gateway_reference = transaction.gateway_reference
    if verdict is SnapshotVerdict.STALE:
        return False
    if verdict is SnapshotVerdict.MONEY_HELD:
        found_money_held(uow, payment, transaction)
        return False
    if transaction.card is not None and payment.card_last4 is None:
        payment.card_brand = transaction.card.brand
        payment.card_last4 = transaction.card.last4
        payment.card_country = transaction.card.country
    target = move.target
    now = utcnow()
    if verdict is SnapshotVerdict.UNCHANGED:
        payment.gateway_updated_at = transaction.updated_at
        if target == PaymentStatus.REQUIRES_ACTION:
            payment.next_action_json = _next_action_json(transaction)
        return False
    if verdict is SnapshotVerdict.STALE_AUTHORISED:
        log.info("stale authorised snapshot ignored while capturing", extra={"payment_id": payment.id})
        return False
    if not move.moves or target is None:
        return False
    payment.gateway_updated_at = transaction.updated_at
    if target == PaymentStatus.FAILED:
        code, message = failure_for(transaction)
        fail(uow, payment, code, message, now)
        return True
    payment.next_action_json = (
        _next_action_json(transaction) if target == PaymentStatus.REQUIRES_ACTION else None
    )
    if target == PaymentStatus.SUCCEEDED:
        payment.amount_captured = transaction.captured_amount or payment.amount
        payment.succeeded_at = now
    elif target == PaymentStatus.CANCELED:
        payment.canceled_at = now
        payment.cancellation_reason = cancellation_reason or "voided_at_gateway"
    move_payment(payment, target, now)
    payment_changed(uow, payment)
    return True


def found_money_held(uow: UnitOfWork, payment: Payment, transaction: GatewayTransaction) -> None:
    """The gateway holds the buyer's money for a payment we already called failed or canceled.

    A snapshot no newer than the gateway's final word (declined, voided, expired) is only an old
    one arriving late: those states are final at the gateway. A newer one means a charge landed
    after we gave up on it (recovery found no record while the request was still on its way):
    marked for ``reverse_held_money``, which voids or refunds it at the gateway, so the buyer is
    not charged for a payment the marketplace was told failed. (``check_for_stray_charge`` also
    brings here a request still waiting on the buyer, to be voided before they approve it.)
    """
    if not counts_as_new_charge(transaction.updated_at, payment.gateway_updated_at):
        return
    payment.gateway_updated_at = transaction.updated_at
    payment.stray_charge_check_at = None  # found: no need to look for it any more
    if payment.reversal_status is not None:
        return  # already being given back (or given back): a duplicate of the news
    log.error(
        "gateway holds money for a %s payment; reversing it",
        payment.status,
        extra={
            "payment_id": payment.id,
            "gateway_reference": transaction.gateway_reference,
            "raw_status": transaction.raw_status,
            "amount": transaction.captured_amount or transaction.amount,
        },
    )
    payment.reversal_status = Reversal.REQUIRED
    payment.updated_at = utcnow()
    payment_reversal_changed(uow, payment)


def _next_action_json(transaction: GatewayTransaction) -> str | None:
    action = transaction.next_action
    if action is None:
        return None
    body: dict[str, Any] = {"type": action.type, "redirect_url": action.redirect_url}
    if action.expires_at is not None:
        body["expires_at"] = dt.datetime.fromtimestamp(action.expires_at, dt.UTC).isoformat()
    return json.dumps(body)


def move_payment(payment: Payment, target: PaymentStatus, now: dt.datetime) -> None:
    """Move the payment along its transition table; an illegal move is ``invalid_state``."""
    if not can_move(payment.status, target):
        raise Conflict(
            f"A payment cannot go from {payment.status} to {target}.",
            code="invalid_state",
            payment_status=payment.status,
        )
    payment.status = target
    payment.updated_at = now


def fail(uow: UnitOfWork, payment: Payment, code: str, message: str, now: dt.datetime) -> None:
    move_payment(payment, PaymentStatus.FAILED, now)
    payment.failure_code = code
    payment.failure_message = message
    payment.failed_at = now
    payment.next_action_json = None
    payment_changed(uow, payment)
