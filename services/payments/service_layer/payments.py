"""Payments: created by a marketplace, confirmed with a card token or a wallet phone, then moved by
the gateway's answers, callbacks and the recovery job's polls. States: domain/payments.py.

A confirm commits ``processing`` before the gateway is called, under a row lock: of fifty
concurrent confirms of one payment, one calls the gateway and the others find it no longer
confirmable (409 ``invalid_state``). The gateway call carries an idempotency key derived from the
payment, so a retried call never charges twice. A call whose outcome is unknown leaves the payment
``processing`` for the recovery job to settle from the gateway's own record.
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

from services.payments.adapters.orm import GatewayAttempt, Payee, PayeeMarketplace, Payment
from services.payments.domain.gateway import (
    AuthoriseRequest,
    CaptureRequest,
    GatewayRefund,
    GatewayTransaction,
    PaymentMethod,
    RefundRequest,
    RefundStatus,
    RequestToPay,
    TransactionStatus,
    VoidRequest,
)
from services.payments.domain.payments import (
    AWAITING_GATEWAY,
    CANCELABLE,
    CAPTURABLE,
    CONFIRMABLE,
    FAILURE_MESSAGES,
    REVERSAL_IN_PROGRESS,
    VOID,
    PaymentStatus,
    Reversal,
    can_move,
    failure_for,
    gateway_moves,
    holds_money,
    reversal_for,
    status_for,
)
from services.payments.service_layer.announcements import payment_changed, payment_reversal_changed
from services.payments.service_layer.gateway_calls import CallOutcome, attempt_row, call_gateway
from services.payments.service_layer.settings import PaymentSettings
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from shared.ids import new_id
from shared.pagination import Page, paginate

log = logging.getLogger(__name__)

KYC_ACTIVE = "active"
# Our own reads of the gateway's current record (``_poll``), as opposed to answers and callbacks.
_FRESH_READS = frozenset({"status", "find"})
# Payments not yet in the ledger that already count against the artisan's tier cap.
_IN_FLIGHT = (PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION, PaymentStatus.REQUIRES_CAPTURE)


@dataclasses.dataclass(frozen=True)
class CreatePayment:
    artisan_id: str
    amount: int
    currency: str
    application_fee: int
    payment_method_type: str
    capture_method: str = "automatic"
    description: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    order_reference: str | None = None


@dataclasses.dataclass(frozen=True)
class ConfirmPayment:
    card_token: str | None = None
    phone: str | None = None  # E.164, already checked to be a Moroccan mobile
    return_url: str | None = None  # where the buyer lands after 3-D Secure


# -- reading -----------------------------------------------------------------------------------------


def _visible(session: Session, payment_id: str, principal: Principal, *, lock: bool = False) -> Payment:
    """The payment, if the caller's marketplace owns it; another marketplace's is simply not found."""
    query = sa.select(Payment).where(Payment.id == payment_id)
    if lock:
        # populate_existing: a row loaded earlier in this session (unlocked) is read afresh under
        # the lock, never served stale from the identity map.
        query = query.with_for_update().execution_options(populate_existing=True)
    payment = session.scalar(query)
    if payment is None or payment.marketplace_id != principal.client_id:
        raise NotFound("No payment has this id.", code="payment_not_found", param="id")
    return payment


def get_payment(uow: UnitOfWork, payment_id: str, principal: Principal) -> Payment:
    with uow:
        return _visible(uow.session, payment_id, principal)


def list_attempts(uow: UnitOfWork, payment_id: str, principal: Principal) -> list[GatewayAttempt]:
    """Every call to the gateway about the payment (and its refunds) and every callback, oldest first."""
    with uow:
        _visible(uow.session, payment_id, principal)
        return list(
            uow.session.scalars(
                sa.select(GatewayAttempt)
                .where(GatewayAttempt.payment_id == payment_id)
                .order_by(GatewayAttempt.id)
            )
        )


def list_payments(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int,
    starting_after: str | None,
    status: str | None = None,
    artisan_id: str | None = None,
    created_gte: dt.datetime | None = None,
    created_lte: dt.datetime | None = None,
) -> Page:
    with uow:
        query = sa.select(Payment).where(Payment.marketplace_id == principal.client_id)
        if status is not None:
            query = query.where(Payment.status == status)
        if artisan_id is not None:
            query = query.where(Payment.artisan_id == artisan_id)
        if created_gte is not None:
            query = query.where(Payment.created_at >= created_gte)
        if created_lte is not None:
            query = query.where(Payment.created_at <= created_lte)
        return paginate(uow.session, query, Payment.id, limit=limit, starting_after=starting_after)


# -- creating ----------------------------------------------------------------------------------------


def create_payment(
    uow: UnitOfWork,
    command: CreatePayment,
    principal: Principal,
    settings: PaymentSettings,
    *,
    creation_key: str | None = None,
) -> Payment:
    """Record a payment to confirm later; refused (nothing charged) when the artisan cannot take it."""
    _check_amounts(command, settings)
    with uow:
        session = uow.session
        if creation_key is not None:
            existing = session.scalar(
                sa.select(Payment).where(
                    Payment.marketplace_id == principal.client_id, Payment.creation_key == creation_key
                )
            )
            if existing is not None:
                return existing
        payee = _locked_payee(session, command.artisan_id, principal.client_id)
        net = command.amount - command.application_fee
        _check_payee_can_receive(session, payee, net)
        now = utcnow()
        payment = Payment(
            id=new_id("pay"),
            marketplace_id=principal.client_id,
            artisan_id=payee.artisan_id,
            amount=command.amount,
            currency=command.currency,
            application_fee=command.application_fee,
            payment_method_type=command.payment_method_type,
            capture_method=command.capture_method,
            status=PaymentStatus.REQUIRES_CONFIRMATION,
            description=command.description,
            metadata_json=json.dumps(command.metadata, ensure_ascii=False, sort_keys=True),
            order_reference=command.order_reference,
            creation_key=creation_key,
            gateway=settings.default_gateway,
            gateway_updated_at=0,
            amount_captured=0,
            amount_refunded=0,
            application_fee_refunded=0,
            ledger_posted=False,
            created_at=now,
            updated_at=now,
        )
        session.add(payment)
        uow.commit()
        return payment


def _check_amounts(command: CreatePayment, settings: PaymentSettings) -> None:
    errors = []
    if command.currency != settings.currency:
        errors.append(
            {
                "param": "currency",
                "code": "unsupported_currency",
                "message": f"Payments are taken in {settings.currency}.",
            }
        )
    if not settings.min_amount <= command.amount <= settings.max_amount:
        errors.append(
            {
                "param": "amount",
                "code": "amount_out_of_range",
                "message": f"amount must be between {settings.min_amount} and {settings.max_amount} "
                "minor units.",
            }
        )
    if command.application_fee > command.amount:
        errors.append(
            {
                "param": "application_fee",
                "code": "application_fee_exceeds_amount",
                "message": "application_fee must not exceed amount.",
            }
        )
    if errors:
        first = errors[0]
        raise ValidationFailed(first["message"], code=first["code"], param=first["param"], errors=errors)


def _locked_payee(session: Session, artisan_id: str, marketplace_id: str) -> Payee:
    """The payee, locked: cap checks of one artisan's concurrent payments run one after the other."""
    linked = session.get(PayeeMarketplace, (artisan_id, marketplace_id)) is not None
    payee = (
        session.scalar(sa.select(Payee).where(Payee.artisan_id == artisan_id).with_for_update())
        if linked
        else None
    )
    if payee is None:
        raise ValidationFailed(
            "No artisan with this id is registered with your marketplace (or payments has not heard of "
            "them yet).",
            code="payee_unknown",
            param="artisan_id",
        )
    return payee


def _check_payee_can_receive(
    session: Session, payee: Payee, net: int, *, excluding: str | None = None
) -> None:
    if payee.kyc_tier < 1 or payee.kyc_status != KYC_ACTIVE:
        raise Conflict(
            "The artisan cannot be paid yet: their KYC tier is 0 or their KYC was rejected.",
            code="payee_not_eligible",
            param="artisan_id",
            kyc_tier=payee.kyc_tier,
        )
    held = payee.ledger_balance + _in_flight_net(session, payee.artisan_id, excluding=excluding)
    headroom = payee.tier_cap_amount - held
    if net > headroom:
        raise Conflict(
            "This payment would take the artisan above the cap of their KYC tier.",
            code="tier_limit_exceeded",
            param="amount",
            kyc_tier=payee.kyc_tier,
            tier_cap={"amount": payee.tier_cap_amount, "currency": payee.currency},
            headroom={"amount": max(headroom, 0), "currency": payee.currency},
        )


def _in_flight_net(session: Session, artisan_id: str, *, excluding: str | None) -> int:
    """The artisan's share of payments on their way: confirmed and not final, or succeeded but not
    yet seen in the ledger (whose balance we hold in ``Payee.ledger_balance``).

    A succeeded payment counts what the ledger will be told: the amount captured less the whole
    commission (a partial capture keeps the whole fee, as ``payments.payment.succeeded`` says). One
    still on its way counts its authorised amount: the most it may yet capture.
    """
    captured_or_authorised = sa.case(
        (Payment.status == PaymentStatus.SUCCEEDED, Payment.amount_captured), else_=Payment.amount
    )
    share = captured_or_authorised - Payment.application_fee
    query = sa.select(sa.func.coalesce(sa.func.sum(share), 0)).where(
        Payment.artisan_id == artisan_id,
        sa.or_(
            Payment.status.in_([str(status) for status in _IN_FLIGHT]),
            sa.and_(Payment.status == PaymentStatus.SUCCEEDED, Payment.ledger_posted.is_(False)),
        ),
    )
    if excluding is not None:
        query = query.where(Payment.id != excluding)
    return int(session.scalar(query))


# -- confirming ----------------------------------------------------------------------------------------


def confirm_payment(
    uow: UnitOfWork, payment_id: str, command: ConfirmPayment, principal: Principal, settings: PaymentSettings
) -> Payment:
    with uow:
        session = uow.session
        artisan_id = _visible(session, payment_id, principal).artisan_id
        # Payee first, then payment: the ledger projection locks in that order too.
        payee = _locked_payee(session, artisan_id, principal.client_id)
        payment = _visible(session, payment_id, principal, lock=True)
        _require_status(payment, CONFIRMABLE, "confirmed")
        _check_method(payment, command)
        _check_payee_can_receive(
            session, payee, payment.amount - payment.application_fee, excluding=payment.id
        )
        now = utcnow()
        _move(payment, PaymentStatus.PROCESSING, now)
        payment.confirmed_at = payment.gateway_checked_at = now
        payment.return_url = command.return_url
        if command.phone:
            payment.wallet_phone_last4 = command.phone[-4:]
        uow.commit()
        gateway_name = payment.gateway
        request = _payment_request(payment, command, settings)
    gateway = settings.gateway(gateway_name)
    if isinstance(request, RequestToPay):
        call, operation = (lambda: gateway.request_to_pay(request)), "request_to_pay"
    else:
        call, operation = (lambda: gateway.authorise(request)), "authorise"
    outcome = call_gateway(operation, call, idempotency_key=request.idempotency_key, amount=request.amount)
    return _settle_call(uow, payment_id, outcome, refused_fails=True)


def _payment_request(
    payment: Payment, command: ConfirmPayment, settings: PaymentSettings
) -> AuthoriseRequest | RequestToPay:
    """What the gateway is asked: a card authorisation, or a request-to-pay to the buyer's wallet.

    The idempotency key is the payment's own: however often the call is retried, by us or by the
    HTTP client, the gateway makes one charge for one payment.
    """
    common = dict(
        reference=payment.id,
        amount=payment.amount,
        currency=payment.currency,
        capture=payment.capture_method == "automatic",
        callback_url=settings.callback_url(payment.gateway),
        idempotency_key=f"{payment.id}:authorise",
        description=payment.description,
    )
    if payment.payment_method_type == PaymentMethod.MOBILE_WALLET:
        return RequestToPay(phone=command.phone, **common)
    return AuthoriseRequest(
        method=PaymentMethod.CARD,
        card_token=command.card_token,
        return_url=settings.three_ds_return_url(payment.id),
        **common,
    )


def _check_method(payment: Payment, command: ConfirmPayment) -> None:
    if payment.payment_method_type == PaymentMethod.CARD:
        if not command.card_token or command.phone:
            raise ValidationFailed(
                "A card payment is confirmed with a card_token (and no phone).",
                code="payment_method_mismatch",
                param="card_token",
            )
    elif not command.phone or command.card_token:
        raise ValidationFailed(
            "A mobile-wallet payment is confirmed with the buyer's phone (and no card_token).",
            code="payment_method_mismatch",
            param="phone",
        )


def _require_status(payment: Payment, allowed: frozenset, action: str) -> None:
    if payment.status not in allowed:
        raise Conflict(
            f"A payment that is {payment.status} cannot be {action}.",
            code="invalid_state",
            payment_status=payment.status,
        )


def _settle_call(
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
        payment = uow.session.scalar(sa.select(Payment).where(Payment.id == payment_id).with_for_update())
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
                fresh_read=outcome.operation in _FRESH_READS,
            )
        elif outcome.error is None and payment.status == PaymentStatus.PROCESSING:
            # A lookup by our reference found nothing: the gateway never recorded the payment.
            _fail(uow, payment, "processing_error", FAILURE_MESSAGES["processing_error"], now)
            if stray_charge_check_after is not None:
                # Unless the request was still queued there and charges the buyer later: should its
                # callback be lost too, only a second look would find it (``check_for_stray_charge``).
                payment.stray_charge_check_at = now + stray_charge_check_after
        elif outcome.refused and refused_fails and payment.status == PaymentStatus.PROCESSING:
            # A 4xx: the gateway did nothing (an unknown token, say). Nothing was charged.
            code = outcome.error.code or "gateway_refused"
            _fail(uow, payment, "gateway_refused", f"{FAILURE_MESSAGES['gateway_refused']} ({code})", now)
        elif outcome.unknown and payment.status == PaymentStatus.PROCESSING:
            # Timeout or 5xx: the charge may have gone through. Stay processing; recovery will tell.
            payment.updated_at = now
            payment_changed(uow, payment)
        uow.commit()
        return payment


# -- applying the gateway's word ----------------------------------------------------------------------


def apply_transaction(
    uow: UnitOfWork,
    payment: Payment,
    transaction: GatewayTransaction,
    *,
    cancellation_reason: str | None = None,
    fresh_read: bool = False,
) -> bool:
    """Move a (locked) payment to what a gateway snapshot says, if that is news. Returns whether it moved.

    Safe to call with duplicated, stale or out-of-order snapshots: older than the newest applied,
    or a step backwards, and nothing changes. ``fresh_read``: the snapshot is our own read of the
    gateway's record, made after our last call to it ended (see ``gateway_moves``).
    """
    if transaction.reference != payment.id:
        log.error("gateway transaction for another payment", extra={"payment_id": payment.id})
        return False
    if payment.gateway_reference is None:
        payment.gateway_reference = transaction.gateway_reference
    elif payment.gateway_reference != transaction.gateway_reference:
        log.error("a second gateway transaction for one payment", extra={"payment_id": payment.id})
        return False
    # Strictly older only: the gateway's clock counts seconds, and an authorisation and its capture
    # often share one. Snapshots of the same second are ordered by rank (``gateway_moves``).
    if transaction.updated_at < payment.gateway_updated_at:
        return False
    if payment.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED) and holds_money(transaction):
        _found_money_held(uow, payment, transaction)
        return False
    if transaction.card is not None and payment.card_last4 is None:
        payment.card_brand = transaction.card.brand
        payment.card_last4 = transaction.card.last4
        payment.card_country = transaction.card.country
    target = status_for(transaction, payment.capture_method)
    now = utcnow()
    if target == payment.status:
        payment.gateway_updated_at = transaction.updated_at
        if target == PaymentStatus.REQUIRES_ACTION:
            payment.next_action_json = _next_action_json(transaction)
        return False
    capturing = payment.capture_requested_at is not None
    if not gateway_moves(payment.status, target, capturing=capturing, fresh_read=fresh_read):
        if (
            capturing
            and payment.status == PaymentStatus.PROCESSING
            and target == PaymentStatus.REQUIRES_CAPTURE
        ):
            log.info("stale authorised snapshot ignored while capturing", extra={"payment_id": payment.id})
        return False
    payment.gateway_updated_at = transaction.updated_at
    if target == PaymentStatus.FAILED:
        code, message = failure_for(transaction)
        _fail(uow, payment, code, message, now)
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
    _move(payment, target, now)
    payment_changed(uow, payment)
    return True


def _found_money_held(uow: UnitOfWork, payment: Payment, transaction: GatewayTransaction) -> None:
    """The gateway holds the buyer's money for a payment we already called failed or canceled.

    A snapshot no newer than the gateway's final word (declined, voided, expired) is only an old
    one arriving late: those states are final at the gateway. A newer one means a charge landed
    after we gave up on it (recovery found no record while the request was still on its way):
    marked for ``reverse_held_money``, which voids or refunds it at the gateway, so the buyer is
    not charged for a payment the marketplace was told failed. (``check_for_stray_charge`` also
    brings here a request still waiting on the buyer, to be voided before they approve it.)
    """
    if transaction.updated_at <= payment.gateway_updated_at:
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


def _move(payment: Payment, target: PaymentStatus, now: dt.datetime) -> None:
    if not can_move(payment.status, target):
        raise Conflict(
            f"A payment cannot go from {payment.status} to {target}.",
            code="invalid_state",
            payment_status=payment.status,
        )
    payment.status = target
    payment.updated_at = now


def _fail(uow: UnitOfWork, payment: Payment, code: str, message: str, now: dt.datetime) -> None:
    _move(payment, PaymentStatus.FAILED, now)
    payment.failure_code = code
    payment.failure_message = message
    payment.failed_at = now
    payment.next_action_json = None
    payment_changed(uow, payment)


# -- 3-D Secure, capture, cancel ----------------------------------------------------------------------


def complete_three_ds(uow: UnitOfWork, payment_id: str, settings: PaymentSettings) -> Payment | None:
    """The buyer is back from the 3-D Secure page: ask the gateway to finish the authorisation.

    Reached by the buyer's browser without credentials, so it only ever asks the gateway what
    happened; an unknown payment gives None.
    """
    with uow:
        payment = uow.session.get(Payment, payment_id)
        if payment is None:
            return None
        if payment.status != PaymentStatus.REQUIRES_ACTION or payment.gateway_reference is None:
            return payment
        gateway_name, reference = payment.gateway, payment.gateway_reference
    gateway = settings.gateway(gateway_name)
    key = f"{payment_id}:three_ds"
    outcome = call_gateway(
        "complete_three_ds", lambda: gateway.complete_three_ds(reference, key), idempotency_key=key
    )
    return _settle_call(uow, payment_id, outcome, refused_fails=False)


def capture_payment(
    uow: UnitOfWork, payment_id: str, amount: int | None, principal: Principal, settings: PaymentSettings
) -> Payment:
    """Capture an authorised payment, in full or in part (once).

    A capture the gateway refuses is ``capture_refused`` (409), unless the gateway's record shows
    the payment captured after all; either way the refusal is an attempt row of its own.
    """
    with uow:
        payment = _visible(uow.session, payment_id, principal, lock=True)
        _require_status(payment, CAPTURABLE, "captured")
        amount = payment.amount if amount is None else amount
        if not 0 < amount <= payment.amount:
            raise ValidationFailed(
                "amount_to_capture must be positive and at most the authorised amount.",
                code="amount_exceeds_authorised",
                param="amount_to_capture",
            )
        if amount < payment.application_fee:
            raise ValidationFailed(
                "amount_to_capture must cover the marketplace's application_fee.",
                code="capture_below_application_fee",
                param="amount_to_capture",
            )
        now = utcnow()
        _move(payment, PaymentStatus.PROCESSING, now)
        payment.gateway_checked_at = payment.capture_requested_at = now
        uow.commit()
        request = CaptureRequest(payment.gateway_reference, amount, f"{payment.id}:capture")
        gateway_name = payment.gateway
    gateway = settings.gateway(gateway_name)
    outcome = call_gateway(
        "capture", lambda: gateway.capture(request), idempotency_key=request.idempotency_key, amount=amount
    )
    if not outcome.refused:
        return _settle_call(uow, payment_id, outcome, refused_fails=False)
    # Refused: nothing was captured by this call. The payment takes what the gateway's record says
    # now (still authorised: requires_capture again; voided or expired there: canceled; captured
    # by another way: succeeded), and the marketplace hears of the refusal.
    poll = _poll(gateway, gateway_name, payment_id, request.gateway_reference)
    payment = _settle_call(uow, payment_id, poll, refused_fails=False, earlier=[outcome])
    if payment.status == PaymentStatus.SUCCEEDED:
        return payment  # what was asked is done
    raise _refusal(
        outcome,
        payment,
        "capture_refused",
        "The gateway refused to capture the payment; nothing was captured.",
    )


def cancel_payment(
    uow: UnitOfWork, payment_id: str, principal: Principal, settings: PaymentSettings
) -> Payment:
    """Cancel before confirmation (nothing to tell the gateway), or void an authorisation or request.

    A void the gateway refuses is ``cancel_refused`` (409), unless its record shows the payment
    voided already."""
    with uow:
        payment = _visible(uow.session, payment_id, principal, lock=True)
        _require_status(payment, CANCELABLE, "canceled")
        if payment.gateway_reference is None:
            now = utcnow()
            _move(payment, PaymentStatus.CANCELED, now)
            payment.canceled_at = now
            payment.cancellation_reason = "requested"
            payment_changed(uow, payment)
            uow.commit()
            return payment
    payment, outcome = _void(uow, payment_id, settings, "requested")
    if outcome.unknown:
        raise ServiceUnavailable(
            "The gateway did not answer; the payment is unchanged. Retry the cancel.",
            code="gateway_unavailable",
        )
    if payment.status == PaymentStatus.CANCELED:
        return payment  # also when the gateway refused because it had voided it already
    if outcome.refused:
        raise _refusal(
            outcome,
            payment,
            "cancel_refused",
            f"The gateway refused to void the payment, which is {payment.status} there.",
        )
    raise Conflict(
        f"The payment is {payment.status} at the gateway and can no longer be canceled.",
        code="invalid_state",
        payment_status=payment.status,
    )


def _void(
    uow: UnitOfWork, payment_id: str, settings: PaymentSettings, reason: str
) -> tuple[Payment, CallOutcome]:
    """Void the payment's transaction at the gateway and apply the answer (canceled, or, when it
    refuses, whatever its record holds: a wallet approved in the meantime, say). Returns the void
    call's own outcome, refused or not."""
    with uow:
        payment = uow.session.get(Payment, payment_id)
        request = VoidRequest(payment.gateway_reference, f"{payment.id}:void")
        gateway_name = payment.gateway
    gateway = settings.gateway(gateway_name)
    outcome = call_gateway("void", lambda: gateway.void(request), idempotency_key=request.idempotency_key)
    if not outcome.refused:
        return _settle_call(
            uow, payment_id, outcome, refused_fails=False, cancellation_reason=reason
        ), outcome
    poll = _poll(gateway, gateway_name, payment_id, request.gateway_reference)
    payment = _settle_call(
        uow, payment_id, poll, refused_fails=False, cancellation_reason=reason, earlier=[outcome]
    )
    return payment, outcome


def _refusal(outcome: CallOutcome, payment: Payment, code: str, detail: str) -> Conflict:
    """The marketplace's error for a capture or void the gateway refused: our stable ``code``, the
    gateway's own reason (``gateway_code``) and the payment's status now that its record was read."""
    return Conflict(detail, code=code, gateway_code=outcome.error.code, payment_status=payment.status)


def payments_to_expire(
    uow: UnitOfWork, settings: PaymentSettings, *, now: dt.datetime, limit: int
) -> list[tuple[str, str]]:
    """Payments left too long in the buyer's or the marketplace's hands, with the reason to cancel:
    a 3-D Secure challenge never finished (``abandoned``), an authorisation never captured
    (``authorisation_expired``). Wallet requests need no help: they expire at the gateway."""
    with uow:
        abandoned = (
            sa.select(Payment.id)
            .where(
                Payment.status == PaymentStatus.REQUIRES_ACTION,
                Payment.payment_method_type == PaymentMethod.CARD,
                Payment.confirmed_at < now - settings.action_expiry,
            )
            .limit(limit)
        )
        uncaptured = (
            sa.select(Payment.id)
            .where(
                Payment.status == PaymentStatus.REQUIRES_CAPTURE,
                Payment.confirmed_at < now - settings.authorisation_expiry,
            )
            .limit(limit)
        )
        return [(payment_id, "abandoned") for payment_id in uow.session.scalars(abandoned)] + [
            (payment_id, "authorisation_expired") for payment_id in uow.session.scalars(uncaptured)
        ]


def expire_payment(uow: UnitOfWork, payment_id: str, reason: str, settings: PaymentSettings) -> str:
    """Void and cancel one payment found by ``payments_to_expire``; returns its status afterwards."""
    payment, _ = _void(uow, payment_id, settings, reason)
    return payment.status


def _poll(gateway: Any, gateway_name: str, payment_id: str, reference: str | None) -> CallOutcome:
    if reference is not None:
        return call_gateway("status", lambda: gateway.transaction(reference))
    return call_gateway("find", lambda: gateway.find_transaction(payment_id))


# -- recovery ----------------------------------------------------------------------------------------


def payments_to_recover(
    uow: UnitOfWork, settings: PaymentSettings, *, now: dt.datetime, limit: int
) -> list[str]:
    cutoff = now - settings.recovery_after
    with uow:
        last_heard = sa.func.coalesce(Payment.gateway_checked_at, Payment.created_at)
        return list(
            uow.session.scalars(
                sa.select(Payment.id)
                .where(Payment.status.in_([str(status) for status in AWAITING_GATEWAY]), last_heard < cutoff)
                .order_by(last_heard)
                .limit(limit)
            )
        )


def recover_payment(uow: UnitOfWork, payment_id: str, settings: PaymentSettings) -> str | None:
    """Ask the gateway what became of a payment left waiting (lost callback, timed-out call).

    Returns the payment's status afterwards. A payment the gateway has no record of, though we
    asked for it long ago, was never charged: it fails with ``processing_error`` (``recovery_after``
    outlasts any call still in flight; a charge that lands even later is reversed, see
    ``reverse_held_money``, and is looked for once more in case its callback is lost, see
    ``check_for_stray_charge``).

    A payment processing since a capture that timed out is settled from the gateway's record too:
    ``captured`` succeeds it; ``authorised``, read now that the capture call is long over, means
    the capture never reached the gateway, so it is back to ``requires_capture`` for the
    marketplace to capture again (or for the authorisation's expiry to void).
    """
    with uow:
        payment = uow.session.get(Payment, payment_id)
        if payment is None or payment.status not in AWAITING_GATEWAY:
            return None if payment is None else payment.status
        gateway_name, reference = payment.gateway, payment.gateway_reference
    gateway = settings.gateway(gateway_name)
    outcome = _poll(gateway, gateway_name, payment_id, reference)
    return _settle_call(
        uow,
        payment_id,
        outcome,
        refused_fails=False,
        stray_charge_check_after=settings.stray_charge_check_after,
    ).status


# -- money held for a payment that failed or was canceled ---------------------------------------------


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
    after the payment failed (``_found_money_held``, then ``reverse_held_money``), and so does a
    request found still waiting on the buyer (a wallet approval), voided lest they approve it. An
    answer, whatever it says, ends the check; the lookup is an attempt row like every call. Returns
    ``STRAY_CHARGE_FOUND``, ``NO_STRAY_CHARGE`` or ``STRAY_CHARGE_UNANSWERED``; None if no check was due.
    """
    with uow:
        payment = uow.session.get(Payment, payment_id)
        if payment is None or payment.stray_charge_check_at is None:
            return None
        gateway_name, reference = payment.gateway, payment.gateway_reference
    gateway = settings.gateway(gateway_name)
    outcome = _poll(gateway, gateway_name, payment_id, reference)
    with uow:
        payment = uow.session.scalar(sa.select(Payment).where(Payment.id == payment_id).with_for_update())
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
                _found_money_held(uow, payment, transaction)
        uow.commit()
        return NO_STRAY_CHARGE if payment.reversal_status is None else STRAY_CHARGE_FOUND


def reverse_held_money(uow: UnitOfWork, payment_id: str, settings: PaymentSettings) -> str | None:
    """Void or refund, at the gateway, money it holds for a payment that failed or was canceled.

    Acts only on the gateway's current record (read now), never on the news that raised the alarm,
    and every call carries an idempotency key derived from the payment, so a retry, by this job or
    after a crash, reverses once. Each call is an attempt row. Returns the reversal status afterwards.
    """
    with uow:
        payment = uow.session.get(Payment, payment_id)
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
        state = _reverse(gateway, gateway_name, payment_id, reference, outcomes)
    with uow:
        payment = uow.session.scalar(sa.select(Payment).where(Payment.id == payment_id).with_for_update())
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
    gateway: Any, gateway_name: str, payment_id: str, reference: str | None, outcomes: list[CallOutcome]
) -> str | None:
    # Two rounds: a void refused because the gateway captured meanwhile is followed by a refund.
    for _ in range(2):
        poll = _poll(gateway, gateway_name, payment_id, reference)
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
