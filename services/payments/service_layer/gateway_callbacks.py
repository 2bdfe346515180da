"""The gateway's signed callbacks: verified against the raw body, applied once, in any order.

A callback is verified (signature and replay window) before anything is read. Its event id is
recorded with its effect, under the payment's row lock, so a redelivery changes nothing; and the
snapshot it carries moves a payment, refund or dispute only forward (see ``apply_transaction``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from services.payments.adapters.gateways.base import CallbackKind, GatewayCallback, InvalidCallback
from services.payments.adapters.orm import GatewayCallbackReceipt, Payment, Refund
from services.payments.service_layer.disputes import apply_dispute, payment_for_dispute
from services.payments.service_layer.gateway_calls import callback_attempt
from services.payments.service_layer.payments import apply_transaction
from services.payments.service_layer.refunds import apply_refund
from services.payments.service_layer.settings import PaymentSettings
from shared.db import UnitOfWork, utcnow
from shared.errors import BadRequest, Unauthenticated

log = logging.getLogger(__name__)


def receive_callback(uow: UnitOfWork, gateway_name: str, headers: Mapping[str, str], raw_body: bytes,
                     settings: PaymentSettings) -> dict[str, Any]:
    gateway = settings.gateway(gateway_name)
    try:
        callback = gateway.parse_callback(headers, raw_body)
    except InvalidCallback as exc:
        log.warning("gateway callback refused", extra={"gateway": gateway_name, "reason": exc.reason})
        if exc.reason == "malformed":
            raise BadRequest("The callback is signed but cannot be read.", code="malformed_callback") from None
        raise Unauthenticated("The callback signature is missing, invalid or outside the replay window.",
                              code="invalid_signature") from None
    with uow:
        payment = _locked_payment(uow, gateway_name, callback)
        if payment is None:
            # Not ours (or not yet known): acknowledge, so the gateway stops retrying, and log it.
            log.warning("gateway callback for no known payment",
                        extra={"gateway": gateway_name, "event_id": callback.event_id, "type": callback.type})
            return {"received": True, "applied": False}
        if uow.session.get(GatewayCallbackReceipt, (gateway_name, callback.event_id)) is not None:
            return {"received": True, "applied": False, "duplicate": True}
        uow.session.add(GatewayCallbackReceipt(gateway=gateway_name, event_id=callback.event_id,
                                               type=callback.type[:60], received_at=utcnow()))
        applied = _apply(uow, gateway_name, payment, callback)
        uow.commit()
        return {"received": True, "applied": applied}


def _locked_payment(uow: UnitOfWork, gateway_name: str, callback: GatewayCallback) -> Payment | None:
    session = uow.session
    if callback.kind == CallbackKind.TRANSACTION:
        query = sa.select(Payment).where(Payment.id == callback.transaction.reference)
    elif callback.kind == CallbackKind.REFUND:
        payment_id = session.scalar(sa.select(Refund.payment_id).where(Refund.id == callback.refund.reference))
        query = sa.select(Payment).where(Payment.id == payment_id)
    else:
        return payment_for_dispute(session, gateway_name, callback.dispute)
    payment = session.scalar(query.with_for_update())
    if payment is not None and payment.gateway != gateway_name:
        return None
    return payment


def _apply(uow: UnitOfWork, gateway_name: str, payment: Payment, callback: GatewayCallback) -> bool:
    session = uow.session
    if callback.kind == CallbackKind.TRANSACTION:
        news = callback.transaction
        session.add(callback_attempt(payment_id=payment.id, gateway=gateway_name, event_type=callback.type,
                                     raw_status=news.raw_status, gateway_reference=news.gateway_reference))
        return apply_transaction(uow, payment, news)
    if callback.kind == CallbackKind.REFUND:
        news = callback.refund
        refund = session.scalar(sa.select(Refund).where(Refund.id == news.reference).with_for_update())
        session.add(callback_attempt(payment_id=payment.id, gateway=gateway_name, event_type=callback.type,
                                     raw_status=news.raw_status, gateway_reference=news.gateway_reference,
                                     refund_id=refund.id))
        return apply_refund(uow, payment, refund, news)
    news = callback.dispute
    session.add(callback_attempt(payment_id=payment.id, gateway=gateway_name, event_type=callback.type,
                                 raw_status=news.raw_status, gateway_reference=news.gateway_reference))
    return apply_dispute(uow, payment, gateway_name, news)
