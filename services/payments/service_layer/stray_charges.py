"""Money the gateway holds for a payment that failed or was canceled: a charge that landed after
recovery gave up on it, or a request still waiting on the buyer. It is looked for once more
(``check_for_stray_charge``) when recovery failed a payment the gateway had no record of, lest the
callback of a late charge be lost too; and whatever is found is given back at the gateway, voided
or refunded (``reverse_held_money``). The reversal's steps are the payment's ``reversal_status``.
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa

from services.payments.adapters.orm import Payment
from services.payments.adapters.repositories import payments
from services.payments.domain.gateway import (
    GatewayRefund,
    GatewayTransaction,
    PaymentGateway,
    RefundRequest,
    RefundStatus,
    TransactionStatus,
    VoidRequest,
)
from services.payments.domain.payments import REVERSAL_IN_PROGRESS, VOID, Reversal, reversal_for
from services.payments.service_layer.announcements import payment_reversal_changed
from services.payments.service_layer.gateway_calls import (
    CallOutcome,
    attempt_row,
    call_gateway,
    poll_transaction,
)
from services.payments.service_layer.gateway_news import apply_transaction, found_money_held
from services.payments.service_layer.settings import PaymentSettings
from shared.db import UnitOfWork, utcnow

log = logging.getLogger(__name__)


def _reversal_reference(payment_id: str) -> str:
    """Our reference for the refund that gives back a stray charge (no Refund row: the money never
    reached the ledger, so there is nothing to take out of it)."""
    return f"{payment_id}:reversal"


def payments_to_reverse(
    uow: UnitOfWork, settings: PaymentSettings, *, now: dt.datetime, limit: int
) -> list[str]:
    """Payments whose held money is to be given back now, or whose reversal refund is to be checked."""
    cutoff = now - settings.recovery_after
    with uow:
        return list(
            uow.session.scalars(
                sa.select(Payment.id)
                .where(
                    sa.or_(
                        Payment.reversal_status == Reversal.REQUIRED,
                        sa.and_(
                            Payment.reversal_status == Reversal.REFUND_PENDING,
                            Payment.gateway_checked_at < cutoff,
                        ),
                    )
                )
                .order_by(Payment.gateway_checked_at)
                .limit(limit)
            )
        )


# What ``check_for_stray_charge`` found.
STRAY_CHARGE_FOUND = "found"  # money held (or a request awaiting the buyer): to be given back
NO_STRAY_CHARGE = "none"  # no record still, or one that holds nothing: the check is over
STRAY_CHARGE_UNANSWERED = "unanswered"  # the lookup timed out or was refused: a later run asks again


def payments_to_check_for_stray_charges(
    uow: UnitOfWork, settings: PaymentSettings, *, now: dt.datetime, limit: int
) -> list[str]:
    """Payments failed as never recorded by the gateway whose second look is due. One whose look
    went unanswered waits ``recovery_after`` before the next, as a payment left waiting does."""
    cutoff = now - settings.recovery_after
    with uow:
        return list(
            uow.session.scalars(
                sa.select(Payment.id)
                .where(Payment.stray_charge_check_at <= now, Payment.gateway_checked_at < cutoff)
                .order_by(Payment.stray_charge_check_at)
                .limit(limit)
            )
        )


def check_for_stray_charge(uow: UnitOfWork, payment_id: str, settings: PaymentSettings) -> str | None:
    """Look up once more a payment recovery failed because the gateway had no record of it.

    The request may still have been queued at the gateway and charged the buyer later; its callback
    would tell us, but callbacks get lost. Money found held takes the path of any charge that lands
    after the payment failed (``found_money_held``, then ``reverse_held_money``), and so does a
    request found still waiting on the buyer (a wallet approval), voided lest they approve it. An
    answer, whatever it says, ends the check; the lookup is an attempt row like every call. Returns
    ``STRAY_CHARGE_FOUND``, ``NO_STRAY_CHARGE`` or ``STRAY_CHARGE_UNANSWERED``; None if no check was due.
    """
    with uow:
        payment = payments.get(uow.session, payment_id)
        if payment is None or payment.stray_charge_check_at is None:
            return None
        gateway_name, reference = payment.gateway, payment.gateway_reference
    gateway = settings.gateway(gateway_name)
    outcome = poll_transaction(gateway, payment_id, reference)
    with uow:
        payment = payments.locked(uow.session, payment_id)
        uow.session.add(attempt_row(outcome, payment_id=payment.id, gateway=payment.gateway))
        payment.gateway_checked_at = utcnow()
        if outcome.error is not None:
            # Timed out, 5xx or refused: nothing learnt, so the check stays due.
            uow.commit()
            return STRAY_CHARGE_UNANSWERED
        payment.stray_charge_check_at = None
        transaction: GatewayTransaction | None = outcome.answer
        if transaction is not None:
            apply_transaction(uow, payment, transaction, fresh_read=True)
            if transaction.status == TransactionStatus.ACTION_REQUIRED:
                found_money_held(uow, payment, transaction)
        uow.commit()
        return NO_STRAY_CHARGE if payment.reversal_status is None else STRAY_CHARGE_FOUND


def reverse_held_money(uow: UnitOfWork, payment_id: str, settings: PaymentSettings) -> str | None:
    """Void or refund, at the gateway, money it holds for a payment that failed or was canceled.

    Acts only on the gateway's current record (read now), never on the news that raised the alarm,
    and every call carries an idempotency key derived from the payment, so a retry, by this job or
    after a crash, reverses once. Each call is an attempt row. Returns the reversal status afterwards.
    """
    with uow:
        payment = payments.get(uow.session, payment_id)
        if payment is None or payment.reversal_status not in REVERSAL_IN_PROGRESS:
            return None if payment is None else payment.reversal_status
        gateway_name, reference, state = payment.gateway, payment.gateway_reference, payment.reversal_status
    gateway = settings.gateway(gateway_name)
    outcomes: list[CallOutcome] = []
    if state == Reversal.REFUND_PENDING:
        found = call_gateway("find_refund", lambda: gateway.find_refund(_reversal_reference(payment_id)))
        outcomes.append(found)
        # Our refund gone from the gateway's books is for an operator to look into, not a machine.
        state = (
            Reversal.FAILED
            if found.answer is None and not found.unknown
            else _reversal_from_refund(found, state)
        )
    else:
        state = _reverse(gateway, payment_id, reference, outcomes)
    with uow:
        payment = payments.locked(uow.session, payment_id)
        for outcome in outcomes:
            uow.session.add(attempt_row(outcome, payment_id=payment.id, gateway=payment.gateway))
        payment.gateway_checked_at = now = utcnow()
        if payment.reversal_status != state:
            payment.reversal_status = state
            payment.updated_at = now
            if state == Reversal.FAILED:
                log.error(
                    "the gateway would not give back money held for a %s payment: an operator must",
                    payment.status,
                    extra={"payment_id": payment.id},
                )
            payment_reversal_changed(uow, payment)
        uow.commit()
        return payment.reversal_status


def _reverse(
    gateway: PaymentGateway, payment_id: str, reference: str | None, outcomes: list[CallOutcome]
) -> str | None:
    # Two rounds: a void refused because the gateway captured meanwhile is followed by a refund.
    for _ in range(2):
        poll = poll_transaction(gateway, payment_id, reference)
        outcomes.append(poll)
        if poll.unknown:
            return Reversal.REQUIRED  # the next run asks again
        transaction: GatewayTransaction | None = poll.answer
        if transaction is None:
            # No record (or a refused lookup) though a snapshot said it held money: not for a machine.
            return Reversal.FAILED
        action = reversal_for(transaction)
        if action is None:
            if transaction.status == TransactionStatus.CAPTURED:
                # Refunded in full: no marketplace refunds a failed payment, so that was our reversal
                # (answered before a crash, say).
                return Reversal.REFUNDED
            if transaction.status == TransactionStatus.VOIDED:
                # The alarm was raised on news newer than the gateway's last word, so the money was
                # held after it: released since, by our reversal void (whose answer was lost) or the
                # gateway. Either way it is given back: recorded as such, not forgotten.
                return Reversal.VOIDED
            # Declined or expired: the alarm was an old snapshot after all.
            log.warning(
                "money held for a failed payment was already released", extra={"payment_id": payment_id}
            )
            return None
        if action == VOID:
            request = VoidRequest(transaction.gateway_reference, f"{payment_id}:reversal_void")
            call = call_gateway(
                "reversal_void",
                lambda request=request: gateway.void(request),
                idempotency_key=request.idempotency_key,
            )
        else:
            existing = call_gateway(
                "find_refund", lambda: gateway.find_refund(_reversal_reference(payment_id))
            )
            outcomes.append(existing)
            if existing.answer is not None or existing.unknown:
                return _reversal_from_refund(existing, Reversal.REQUIRED)
            amount = transaction.captured_amount - transaction.refunded_amount
            request = RefundRequest(
                transaction.gateway_reference,
                _reversal_reference(payment_id),
                amount,
                transaction.currency,
                f"{payment_id}:reversal_refund",
            )
            call = call_gateway(
                "reversal_refund",
                lambda request=request: gateway.refund(request),
                idempotency_key=request.idempotency_key,
                amount=amount,
            )
        outcomes.append(call)
        if call.unknown:
            return Reversal.REQUIRED
        if call.refused:
            continue
        if action == VOID:
            return Reversal.VOIDED if call.answer.status == TransactionStatus.VOIDED else Reversal.REQUIRED
        return _reversal_from_refund(call, Reversal.REQUIRED)
    return Reversal.FAILED


def _reversal_from_refund(outcome: CallOutcome, unchanged: str) -> str:
    refund: GatewayRefund | None = outcome.answer
    if refund is None:
        return unchanged
    if refund.status == RefundStatus.SUCCEEDED:
        return Reversal.REFUNDED
    if refund.status == RefundStatus.FAILED:
        return Reversal.FAILED
    return Reversal.REFUND_PENDING
