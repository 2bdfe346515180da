"""Refunds: part or all of a succeeded payment given back, any number of times, never more than
was captured. ``pending`` until the gateway says ``succeeded`` or ``failed`` (in its answer, a
callback, or the recovery job's poll).

Pending refunds count as given back when checking what is left to refund, so two concurrent
refunds can never exceed the captured amount (both run under the payment's row lock). The
marketplace's commission is refunded in proportion to the amount unless the request says how much.
A payment with a dispute open or lost is not refunded (``charge_disputed``): the chargeback already
gives the buyer their money back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import Payment, Refund
from services.payments.adapters.repositories import payments, refunds
from services.payments.domain.gateway import GatewayRefund, RefundRequest, RefundStatus
from services.payments.domain.payments import PaymentStatus
from services.payments.domain.refunds import proportional_fee, refund_moves, refund_room
from services.payments.service_layer.announcements import refund_changed
from services.payments.service_layer.gateway_calls import CallOutcome, attempt_row, call_gateway
from services.payments.service_layer.ownership import visible_payment, yours
from services.payments.service_layer.settings import PaymentSettings
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.ids import new_id
from shared.pagination import Page, paginate

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CreateRefund:
    payment_id: str
    amount: int | None = None  # default: all that is left to refund
    currency: str | None = None
    application_fee_refunded: int | None = None  # default: in proportion to the amount
    reason: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


def get_refund(uow: UnitOfWork, refund_id: str, principal: Principal) -> Refund:
    with uow:
        return yours(
            refunds.get(uow.session, refund_id),
            principal,
            NotFound("No refund has this id.", code="refund_not_found", param="id"),
        )


def list_refunds(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int,
    starting_after: str | None,
    payment_id: str | None = None,
    status: str | None = None,
) -> Page:
    with uow:
        query = sa.select(Refund).where(Refund.marketplace_id == principal.client_id)
        if payment_id is not None:
            query = query.where(Refund.payment_id == payment_id)
        if status is not None:
            query = query.where(Refund.status == status)
        return paginate(uow.session, query, Refund.id, limit=limit, starting_after=starting_after)


def create_refund(
    uow: UnitOfWork,
    command: CreateRefund,
    principal: Principal,
    settings: PaymentSettings,
    *,
    creation_key: str | None = None,
) -> Refund:
    with uow:
        session = uow.session
        if creation_key is not None:
            existing = refunds.created_with_key(session, principal.client_id, creation_key)
            if existing is not None:
                return existing
        payment = visible_payment(session, command.payment_id, principal, lock=True, param="payment_id")
        if payment.status != PaymentStatus.SUCCEEDED:
            raise Conflict(
                f"Only a succeeded payment can be refunded; this one is {payment.status}.",
                code="invalid_state",
                param="payment_id",
                payment_status=payment.status,
            )
        _check_not_disputed(session, payment)
        if command.currency is not None and command.currency != payment.currency:
            raise ValidationFailed(
                f"The payment is in {payment.currency}.", code="unsupported_currency", param="currency"
            )
        pending_amount, pending_fee = refunds.pending_totals(session, payment.id)
        room = refund_room(
            captured=payment.amount_captured,
            refunded=payment.amount_refunded,
            pending_amount=pending_amount,
            application_fee=payment.application_fee,
            fee_refunded=payment.application_fee_refunded,
            pending_fee=pending_fee,
        )
        amount = room.refundable if command.amount is None else command.amount
        if amount <= 0 or amount > room.refundable:
            raise Conflict(
                "The refund is more than what is left to refund of the captured amount."
                if amount > 0
                else "The payment is already fully refunded.",
                code="refund_exceeds_captured",
                param="amount",
                refundable={"amount": max(room.refundable, 0), "currency": payment.currency},
            )
        if command.application_fee_refunded is None:
            fee = proportional_fee(
                payment.application_fee,
                payment.amount_captured,
                amount,
                room.fee_given_back,
                room.given_back,
            )
        else:
            fee = command.application_fee_refunded
            if not room.fee_fits(fee, amount):
                raise ValidationFailed(
                    "application_fee_refunded must not exceed the amount refunded nor the commission left.",
                    code="application_fee_refund_too_large",
                    param="application_fee_refunded",
                )
        now = utcnow()
        refund = Refund(
            id=new_id("re"),
            payment_id=payment.id,
            marketplace_id=payment.marketplace_id,
            artisan_id=payment.artisan_id,
            amount=amount,
            currency=payment.currency,
            application_fee_refunded=fee,
            status=RefundStatus.PENDING,
            reason=command.reason,
            gateway=payment.gateway,
            metadata_json=json.dumps(command.metadata, ensure_ascii=False, sort_keys=True),
            requested_by=principal.client_id,
            creation_key=creation_key,
            created_at=now,
            updated_at=now,
            gateway_checked_at=now,
        )
        session.add(refund)
        refund_changed(uow, refund, "refund.created")
        uow.commit()
        request = RefundRequest(
            payment.gateway_reference, refund.id, amount, payment.currency, idempotency_key=refund.id
        )
        refund_id, gateway_name = refund.id, refund.gateway
    gateway = settings.gateway(gateway_name)
    outcome = call_gateway(
        "refund", lambda: gateway.refund(request), idempotency_key=request.idempotency_key, amount=amount
    )
    return _settle_refund_call(uow, refund_id, outcome)


def _check_not_disputed(session: Session, payment: Payment) -> None:
    """A chargeback open or lost gives the buyer their money back through their bank: a refund on
    top would pay them twice. A dispute won leaves the payment refundable as before.

    Disputes are opened and closed under the payment's row lock, which the caller holds, so none
    can open between this check and the refund.
    """
    dispute = refunds.dispute_blocking_refunds(session, payment.id)
    if dispute is not None:
        raise Conflict(
            f"The payment has a dispute that is {dispute.status}: the buyer gets the money back through the "
            "chargeback, so it cannot be refunded as well.",
            code="charge_disputed",
            param="payment_id",
            dispute_id=dispute.id,
            dispute_status=dispute.status,
        )


def _locked_pair(session: Session, refund_id: str) -> tuple[Payment, Refund]:
    """The refund and its payment, locked payment first (the order every refund path uses)."""
    payment = payments.locked(session, refunds.payment_id_of(session, refund_id))
    refund = refunds.locked(session, refund_id)
    return payment, refund


def _settle_refund_call(
    uow: UnitOfWork, refund_id: str, outcome: CallOutcome, *, earlier: Sequence[CallOutcome] = ()
) -> Refund:
    """Record the attempts (``earlier`` calls too, recorded only) and apply ``outcome``, in one transaction."""
    with uow:
        payment, refund = _locked_pair(uow.session, refund_id)
        for made in (*earlier, outcome):
            uow.session.add(
                attempt_row(made, payment_id=payment.id, gateway=refund.gateway, refund_id=refund.id)
            )
        refund.gateway_checked_at = utcnow()
        if outcome.answer is not None:
            apply_refund(uow, payment, refund, outcome.answer)
        elif outcome.refused and refund_moves(refund.status, RefundStatus.FAILED):
            # A 4xx: the gateway refunded nothing.
            _fail_refund(uow, refund, outcome.error.code or "refund_refused", utcnow())
        uow.commit()
        return refund


def apply_refund(uow: UnitOfWork, payment: Payment, refund: Refund, answer: GatewayRefund) -> bool:
    """Move a (locked) pending refund to what the gateway reports; duplicates and stale news change nothing."""
    if answer.reference != refund.id:
        log.error("gateway refund for another refund", extra={"refund_id": refund.id})
        return False
    if refund.gateway_reference is None:
        refund.gateway_reference = answer.gateway_reference
    if not refund_moves(refund.status, answer.status):
        return False  # still pending, or settled already (a duplicate, a late snapshot)
    now = utcnow()
    if answer.status == RefundStatus.SUCCEEDED:
        refund.status = RefundStatus.SUCCEEDED
        refund.succeeded_at = refund.updated_at = now
        payment.amount_refunded += refund.amount
        payment.application_fee_refunded += refund.application_fee_refunded
        payment.updated_at = now
        refund_changed(uow, refund, "refund.succeeded")
    else:
        _fail_refund(uow, refund, answer.failure_code or "refund_declined", now)
    return True


def _fail_refund(uow: UnitOfWork, refund: Refund, code: str, now: dt.datetime) -> None:
    refund.status = RefundStatus.FAILED
    refund.failure_code = code[:40]
    refund.failed_at = refund.updated_at = now
    refund_changed(uow, refund, "refund.failed")


def refunds_to_recover(
    uow: UnitOfWork, settings: PaymentSettings, *, now: dt.datetime, limit: int
) -> list[str]:
    cutoff = now - settings.recovery_after
    with uow:
        last_heard = sa.func.coalesce(Refund.gateway_checked_at, Refund.created_at)
        return list(
            uow.session.scalars(
                sa.select(Refund.id)
                .where(Refund.status == RefundStatus.PENDING, last_heard < cutoff)
                .order_by(last_heard)
                .limit(limit)
            )
        )


def recover_refund(uow: UnitOfWork, refund_id: str, settings: PaymentSettings) -> str | None:
    """Poll the gateway for a refund left pending; one it never recorded is sent again (same key)."""
    with uow:
        refund = refunds.get(uow.session, refund_id)
        if refund is None or refund.status != RefundStatus.PENDING:
            return None if refund is None else refund.status
        payment = payments.get(uow.session, refund.payment_id)
        reference, gateway_name = refund.gateway_reference, refund.gateway
        request = RefundRequest(
            payment.gateway_reference, refund.id, refund.amount, refund.currency, idempotency_key=refund.id
        )
    gateway = settings.gateway(gateway_name)
    if reference is not None:
        outcome = call_gateway("refund_status", lambda: gateway.refund_status(reference))
        return _settle_refund_call(uow, refund_id, outcome).status
    found = call_gateway("find_refund", lambda: gateway.find_refund(refund_id))
    if found.error is not None or found.answer is not None:
        return _settle_refund_call(uow, refund_id, found).status
    # Never reached the gateway: send it now. The key makes a late duplicate harmless. The empty
    # lookup is recorded too: it is why the refund was sent again.
    sent = call_gateway(
        "refund",
        lambda: gateway.refund(request),
        idempotency_key=request.idempotency_key,
        amount=request.amount,
    )
    return _settle_refund_call(uow, refund_id, sent, earlier=[found]).status
