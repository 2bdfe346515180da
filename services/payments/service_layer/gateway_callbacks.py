"""The gateway's signed callbacks: verified against the raw body, applied once, in any order.

A callback is verified (signature and replay window) before anything is read. Its event id is
recorded with its effect, under the payment's row lock, so a redelivery changes nothing; and the
snapshot it carries moves a payment, refund or dispute only forward (see ``apply_transaction``).
A genuine callback of a type or status not mapped yet is acknowledged and logged, never applied.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from services.payments.adapters.orm import GatewayCallbackReceipt, Payment
from services.payments.adapters.repositories import payments, refunds
from services.payments.domain.gateway import (
    CallbackKind,
    GatewayCallback,
    InvalidCallback,
    UnmappedCallback,
    UnrecognisedCallback,
)
from services.payments.service_layer.disputes import apply_dispute, payment_for_dispute
from services.payments.service_layer.gateway_calls import UNMAPPED, callback_attempt
from services.payments.service_layer.gateway_news import apply_transaction
from services.payments.service_layer.refunds import apply_refund
from services.payments.service_layer.settings import PaymentSettings
from shared.db import UnitOfWork, utcnow
from shared.errors import BadRequest, Unauthenticated

log = logging.getLogger(__name__)


def receive_callback(
    uow: UnitOfWork, gateway_name: str, headers: Mapping[str, str], raw_body: bytes, settings: PaymentSettings
) -> dict[str, Any]:
    gateway = settings.gateway(gateway_name)
    try:
        callback = gateway.parse_callback(headers, raw_body)
    except UnrecognisedCallback as exc:
        return _acknowledge_unmapped(uow, gateway_name, exc)
    except InvalidCallback as exc:
        log.warning("gateway callback refused", extra={"gateway": gateway_name, "reason": exc.reason})
        if exc.reason == "malformed":
            raise BadRequest(
                "The callback is signed but cannot be read.", code="malformed_callback"
            ) from None
        raise Unauthenticated(
            "The callback signature is missing, invalid or outside the replay window.",
            code="invalid_signature",
        ) from None
    with uow:
        payment = _locked_payment(uow, gateway_name, callback)
        if payment is None:
            # Not ours (or not yet known): acknowledge, so the gateway stops retrying, and log it.
            log.warning(
                "gateway callback for no known payment",
                extra={"gateway": gateway_name, "event_id": callback.event_id, "type": callback.type},
            )
            return {"received": True, "applied": False}
        if uow.session.get(GatewayCallbackReceipt, (gateway_name, callback.event_id)) is not None:
            return {"received": True, "applied": False, "duplicate": True}
        uow.session.add(
            GatewayCallbackReceipt(
                gateway=gateway_name,
                event_id=callback.event_id,
                type=callback.type[:60],
                received_at=utcnow(),
            )
        )
        applied = _apply(uow, gateway_name, payment, callback)
        uow.commit()
        return {"received": True, "applied": applied}


def _acknowledge_unmapped(uow: UnitOfWork, gateway_name: str, exc: UnrecognisedCallback) -> dict[str, Any]:
    """A genuine callback we cannot map (a status or type the gateway added): acknowledged, so the
    gateway stops retrying it, and applied to nothing, since guessing what a new status means could
    move money the wrong way. It stays in the payment's attempt log with the gateway's raw status,
    and the warning tells an operator to map it; a payment left waiting is still settled by the
    recovery job's polls.

    No receipt is kept for its event id: it changed nothing. The gateway will not send it again
    (it was acknowledged); for a payment or refund still waiting, the recovery job's poll reads
    the outcome instead, and for anything else the attempt row and the warning are the record.
    """
    news = exc.callback
    log.warning(
        "gateway callback of a type or status not mapped: acknowledged, not applied",
        extra={
            "gateway": gateway_name,
            "reason": exc.reason,
            "event_id": news.event_id,
            "type": news.type,
            "raw_status": news.raw_status,
        },
    )
    with uow:
        payment_id, refund_id = _unmapped_subject(uow, gateway_name, news)
        if payment_id is not None:
            uow.session.add(
                callback_attempt(
                    payment_id=payment_id,
                    gateway=gateway_name,
                    event_type=news.type or "unknown",
                    raw_status=news.raw_status,
                    gateway_reference=news.gateway_reference,
                    refund_id=refund_id,
                    outcome=UNMAPPED,
                )
            )
            uow.commit()
    return {"received": True, "applied": False}


def _unmapped_subject(
    uow: UnitOfWork, gateway_name: str, news: UnmappedCallback
) -> tuple[str | None, str | None]:
    """``(payment id, refund id)`` an unmapped callback is about, as far as it tells; never another
    gateway's payment."""
    session = uow.session
    payment_id: str | None = None
    refund_id: str | None = None
    if news.kind == CallbackKind.TRANSACTION:
        payment_id = news.reference
        if payment_id is None and news.gateway_reference is not None:
            payment_id = payments.id_by_gateway_reference(session, gateway_name, news.gateway_reference)
    elif news.kind == CallbackKind.REFUND and news.reference is not None:
        refund = refunds.get(session, news.reference)
        if refund is not None and refund.gateway == gateway_name:
            payment_id, refund_id = refund.payment_id, refund.id
    elif news.kind == CallbackKind.DISPUTE:
        payment_id = news.payment_reference
        if payment_id is None and news.transaction_reference is not None:
            payment_id = payments.id_by_gateway_reference(session, gateway_name, news.transaction_reference)
    if payment_id is None:
        return None, None
    known = payments.id_if_through(session, payment_id, gateway_name)
    return (known, refund_id) if known is not None else (None, None)


def _locked_payment(uow: UnitOfWork, gateway_name: str, callback: GatewayCallback) -> Payment | None:
    session = uow.session
    if callback.kind == CallbackKind.TRANSACTION:
        payment = payments.locked(session, callback.transaction.reference)
    elif callback.kind == CallbackKind.REFUND:
        payment = payments.locked(session, refunds.payment_id_of(session, callback.refund.reference))
    else:
        return payment_for_dispute(session, gateway_name, callback.dispute)
    if payment is not None and payment.gateway != gateway_name:
        return None
    return payment


def _apply(uow: UnitOfWork, gateway_name: str, payment: Payment, callback: GatewayCallback) -> bool:
    session = uow.session
    if callback.kind == CallbackKind.TRANSACTION:
        news = callback.transaction
        session.add(
            callback_attempt(
                payment_id=payment.id,
                gateway=gateway_name,
                event_type=callback.type,
                raw_status=news.raw_status,
                gateway_reference=news.gateway_reference,
            )
        )
        return apply_transaction(uow, payment, news)
    if callback.kind == CallbackKind.REFUND:
        news = callback.refund
        refund = refunds.locked(session, news.reference)
        session.add(
            callback_attempt(
                payment_id=payment.id,
                gateway=gateway_name,
                event_type=callback.type,
                raw_status=news.raw_status,
                gateway_reference=news.gateway_reference,
                refund_id=refund.id,
            )
        )
        return apply_refund(uow, payment, refund, news)
    news = callback.dispute
    session.add(
        callback_attempt(
            payment_id=payment.id,
            gateway=gateway_name,
            event_type=callback.type,
            raw_status=news.raw_status,
            gateway_reference=news.gateway_reference,
        )
    )
    return apply_dispute(uow, payment, gateway_name, news)
