"""What a marketplace does with a payment: create it, confirm it with a card token or a wallet
phone, capture it, cancel it, read it; and the buyer's return from 3-D Secure. States:
domain/payments.py; the gateway's answers are applied by ``gateway_news``.

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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.payments.adapters.orm import GatewayAttempt, Payment
from services.payments.adapters.repositories import payees, payments
from services.payments.domain.gateway import (
    AuthoriseRequest,
    CaptureRequest,
    PaymentMethod,
    RequestToPay,
    VoidRequest,
)
from services.payments.domain.payees import cap_headroom, fits_under_cap, most_on_the_way_that_fits
from services.payments.domain.payments import CANCELABLE, CAPTURABLE, CONFIRMABLE, PaymentStatus
from services.payments.service_layer.announcements import payment_changed
from services.payments.service_layer.gateway_calls import CallOutcome, call_gateway, poll_transaction
from services.payments.service_layer.gateway_news import move_payment, settle_call
from services.payments.service_layer.ownership import visible_payment
from services.payments.service_layer.settings import PaymentSettings
from shared.auth import Principal
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, ServiceUnavailable, ValidationFailed
from shared.ids import new_id
from shared.kyc import can_be_paid
from shared.pagination import Page, paginate


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


def get_payment(uow: UnitOfWork, payment_id: str, principal: Principal) -> Payment:
    with uow:
        return visible_payment(uow.session, payment_id, principal)


def list_attempts(uow: UnitOfWork, payment_id: str, principal: Principal) -> list[GatewayAttempt]:
    """Every call to the gateway about the payment (and its refunds) and every callback, oldest first."""
    with uow:
        visible_payment(uow.session, payment_id, principal)
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
    """Record a payment to confirm later; refused (nothing charged) when the artisan cannot take it.

    One transaction: the payee locked (with its marketplace checked), then the payment inserted by
    a statement that sums what the artisan has on its way to the ledger and inserts only if the
    cap leaves room (``most_on_the_way_that_fits``). A ``creation_key`` the marketplace already created a payment with (its
    idempotency record expired since) gives that payment, not a twin: even when the artisan could
    not take it now (their KYC lost, their cap full of that very payment), for a client told
    otherwise would retry with a new key and charge the buyer twice."""
    _check_amounts(command, settings)
    net = command.amount - command.application_fee
    with uow:
        session = uow.session
        try:
            payee = _locked_payee(session, command.artisan_id, principal.client_id)
            _check_payee_eligible(payee)
        except (Conflict, ValidationFailed):
            # Looked for only on a refusal: a creation that may go ahead finds its key's payment
            # in its own insert, without a round trip more.
            earlier = (
                None
                if creation_key is None
                else payments.created_with_key(session, principal.client_id, creation_key)
            )
            if earlier is None:
                raise
            return earlier
        now = utcnow()
        values = dict(
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
        # The cap's check is the insert's own (one round trip): it goes in only while what is on
        # its way to the ledger leaves room for this payment's net share.
        most_on_the_way = most_on_the_way_that_fits(
            net, tier_cap=payee.tier_cap_amount, ledger_balance=payee.ledger_balance
        )
        payment = payments.add_unless_created(session, on_the_way_at_most=most_on_the_way, **values)
        if payment is None:
            # Refused for the cap, and no payment has the key: said with the headroom.
            _check_under_cap(session, payee, net)
            # Payments on their way left room meanwhile (the lock keeps others from adding any):
            # once more, and never a loop.
            payment = payments.add_unless_created(session, on_the_way_at_most=most_on_the_way, **values)
            if payment is None:
                raise CapReadingsDisagree(
                    f"payment to {payee.artisan_id} neither inserted nor refused by the cap"
                )
        uow.commit()  # nothing to write when the key's payment was there already
        return payment


class CapReadingsDisagree(RuntimeError):
    """The capped insert refused a payment twice that the cap's own check let through: the two
    readings of what is on its way to the ledger disagree, which the payee's lock rules out."""


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


def _locked_payee(session: Session, artisan_id: str, marketplace_id: str) -> payees.PayeeTerms:
    """The payee, locked: cap checks of one artisan's concurrent payments run one after the other."""
    payee = payees.locked_for_marketplace(session, artisan_id, marketplace_id)
    if payee is None:
        raise _payee_unknown()
    return payee


def _payee_unknown() -> ValidationFailed:
    return ValidationFailed(
        "No artisan with this id is registered with your marketplace (or payments has not heard of "
        "them yet).",
        code="payee_unknown",
        param="artisan_id",
    )


def _check_payee_can_receive(
    session: Session, payee: payees.PayeeTerms, net: int, *, excluding: str | None = None
) -> None:
    """The gates (``domain/payees.py``): no erasure request, KYC, then the tier's cap on what they hold."""
    _check_payee_eligible(payee)
    _check_under_cap(session, payee, net, excluding=excluding)


def _check_payee_eligible(payee: payees.PayeeTerms) -> None:
    """No erasure request, and KYC: whatever the amount."""
    if payee.restricted_at is not None:
        raise Conflict(
            "The artisan asked for their personal data to be erased: they can no longer be paid.",
            code="payee_restricted",
            param="artisan_id",
        )
    if not can_be_paid(payee.kyc_tier, payee.kyc_status):
        raise Conflict(
            "The artisan cannot be paid yet: their KYC tier is 0 or their KYC was rejected.",
            code="payee_not_eligible",
            param="artisan_id",
            kyc_tier=payee.kyc_tier,
        )


def _check_under_cap(
    session: Session, payee: payees.PayeeTerms, net: int, *, excluding: str | None = None
) -> None:
    """The tier's cap on what the artisan holds: their ledger balance and what is on its way to it."""
    held = payee.ledger_balance + payments.artisan_share_on_the_way(
        session, payee.artisan_id, excluding=excluding
    )
    if not fits_under_cap(net, tier_cap=payee.tier_cap_amount, held=held):
        headroom = cap_headroom(payee.tier_cap_amount, held)
        raise Conflict(
            "This payment would take the artisan above the cap of their KYC tier.",
            code="tier_limit_exceeded",
            param="amount",
            kyc_tier=payee.kyc_tier,
            tier_cap={"amount": payee.tier_cap_amount, "currency": payee.currency},
            headroom={"amount": max(headroom, 0), "currency": payee.currency},
        )


# -- confirming ----------------------------------------------------------------------------------------


def confirm_payment(
    uow: UnitOfWork,
    payment_id: str,
    command: ConfirmPayment,
    principal: Principal,
    settings: PaymentSettings,
    *,
    confirmation_key: str | None = None,
) -> Payment:
    """Confirm the payment with the gateway. ``confirmation_key`` is the request's Idempotency-Key:
    the confirmation that used it before (its answer lost to a crash) gets the payment as it stands."""
    with uow:
        session = uow.session
        # Payee first, then payment: the ledger projection locks in that order too.
        payee = payees.locked_for_payment(session, payment_id, principal.client_id)
        payment = visible_payment(session, payment_id, principal, lock=True)
        if confirmation_key is not None and payment.confirmation_key == confirmation_key:
            return payment
        if payee is None:
            raise _payee_unknown()
        _require_status(payment, CONFIRMABLE, "confirmed")
        _check_method(payment, command)
        _check_payee_can_receive(
            session, payee, payment.amount - payment.application_fee, excluding=payment.id
        )
        now = utcnow()
        move_payment(payment, PaymentStatus.PROCESSING, now)
        payment.confirmed_at = payment.gateway_checked_at = now
        payment.confirmation_key = confirmation_key
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
    return settle_call(uow, payment_id, outcome, refused_fails=True)


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


# -- 3-D Secure, capture, cancel ----------------------------------------------------------------------


def complete_three_ds(uow: UnitOfWork, payment_id: str, settings: PaymentSettings) -> Payment | None:
    """The buyer is back from the 3-D Secure page: ask the gateway to finish the authorisation.

    Reached by the buyer's browser without credentials, so it only ever asks the gateway what
    happened; an unknown payment gives None.
    """
    with uow:
        payment = payments.get(uow.session, payment_id)
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
    return settle_call(uow, payment_id, outcome, refused_fails=False)


def capture_payment(
    uow: UnitOfWork,
    payment_id: str,
    amount: int | None,
    principal: Principal,
    settings: PaymentSettings,
    *,
    capture_key: str | None = None,
) -> Payment:
    """Capture an authorised payment, in full or in part (once).

    A capture the gateway refuses is ``capture_refused`` (409), unless the gateway's record shows
    the payment captured after all; either way the refusal is an attempt row of its own.
    ``capture_key`` is the request's Idempotency-Key: the capture that used it before, its answer
    lost to a crash, gets the payment as it stands when that capture went through (succeeded, or
    processing while its answer is awaited); after a refusal it is refused again.
    """
    with uow:
        payment = visible_payment(uow.session, payment_id, principal, lock=True)
        if _acted_with(payment.capture_key, capture_key) and payment.status in CAPTURE_OUTCOMES:
            return payment  # captured, or its answer still awaited: refused ones fall through to 409
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
        move_payment(payment, PaymentStatus.PROCESSING, now)
        payment.gateway_checked_at = payment.capture_requested_at = now
        payment.capture_key = capture_key
        uow.commit()
        request = CaptureRequest(payment.gateway_reference, amount, f"{payment.id}:capture")
        gateway_name = payment.gateway
    gateway = settings.gateway(gateway_name)
    outcome = call_gateway(
        "capture", lambda: gateway.capture(request), idempotency_key=request.idempotency_key, amount=amount
    )
    if not outcome.refused:
        return settle_call(uow, payment_id, outcome, refused_fails=False)
    # Refused: nothing was captured by this call. The payment takes what the gateway's record says
    # now (still authorised: requires_capture again; voided or expired there: canceled; captured
    # by another way: succeeded), and the marketplace hears of the refusal.
    poll = poll_transaction(gateway, payment_id, request.gateway_reference)
    payment = settle_call(uow, payment_id, poll, refused_fails=False, earlier=[outcome])
    if payment.status == PaymentStatus.SUCCEEDED:
        return payment  # what was asked is done
    raise _refusal(
        outcome,
        payment,
        "capture_refused",
        "The gateway refused to capture the payment; nothing was captured.",
    )


def cancel_payment(
    uow: UnitOfWork,
    payment_id: str,
    principal: Principal,
    settings: PaymentSettings,
    *,
    cancel_key: str | None = None,
) -> Payment:
    """Cancel before confirmation (nothing to tell the gateway), or void an authorisation or request.

    A void the gateway refuses is ``cancel_refused`` (409), unless its record shows the payment
    voided already. ``cancel_key`` is the request's Idempotency-Key: the cancel that used it
    before, its answer lost to a crash, gets the payment when it is canceled; a payment that went
    another way meanwhile (the buyer approved, say) is a 409 as for any cancel."""
    with uow:
        payment = visible_payment(uow.session, payment_id, principal, lock=True)
        if _acted_with(payment.cancel_key, cancel_key) and payment.status == PaymentStatus.CANCELED:
            return payment  # only what a cancel makes: a payment charged meanwhile is a 409
        _require_status(payment, CANCELABLE, "canceled")
        payment.cancel_key = cancel_key
        if payment.gateway_reference is None:
            now = utcnow()
            move_payment(payment, PaymentStatus.CANCELED, now)
            payment.canceled_at = now
            payment.cancellation_reason = "requested"
            payment_changed(uow, payment)
            uow.commit()
            return payment
        uow.commit()  # the key is kept before the gateway is asked, as a capture's is
    payment, outcome = void_payment(uow, payment_id, settings, "requested")
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


def void_payment(
    uow: UnitOfWork, payment_id: str, settings: PaymentSettings, reason: str
) -> tuple[Payment, CallOutcome]:
    """Void the payment's transaction at the gateway and apply the answer (canceled, or, when it
    refuses, whatever its record holds: a wallet approved in the meantime, say). Returns the void
    call's own outcome, refused or not."""
    with uow:
        payment = payments.get(uow.session, payment_id)
        request = VoidRequest(payment.gateway_reference, f"{payment.id}:void")
        gateway_name = payment.gateway
    gateway = settings.gateway(gateway_name)
    outcome = call_gateway("void", lambda: gateway.void(request), idempotency_key=request.idempotency_key)
    if not outcome.refused:
        return settle_call(uow, payment_id, outcome, refused_fails=False, cancellation_reason=reason), outcome
    poll = poll_transaction(gateway, payment_id, request.gateway_reference)
    payment = settle_call(
        uow, payment_id, poll, refused_fails=False, cancellation_reason=reason, earlier=[outcome]
    )
    return payment, outcome


# What a capture leaves a payment in when the gateway did not refuse it: succeeded, or processing
# while its answer is awaited (a crash before the call: recovery asks the gateway, as for any).
# A refused capture leaves it capturable again or canceled, and its retry is refused again.
CAPTURE_OUTCOMES = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING})


def _acted_with(kept_key: str | None, key: str | None) -> bool:
    """Whether this request's Idempotency-Key is the one the payment's last capture or cancel used."""
    return key is not None and kept_key == key


def _refusal(outcome: CallOutcome, payment: Payment, code: str, detail: str) -> Conflict:
    """The marketplace's error for a capture or void the gateway refused: our stable ``code``, the
    gateway's own reason (``gateway_code``) and the payment's status now that its record was read."""
    return Conflict(detail, code=code, gateway_code=outcome.error.code, payment_status=payment.status)
