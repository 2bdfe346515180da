"""Payments left waiting: on the gateway (a lost callback, a timed-out call), settled from the
gateway's own record; or on the buyer or the marketplace for too long (3-D Secure never finished,
an authorisation never captured), voided and canceled. The recovery job (``recovery``) runs these.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from services.payments.adapters.orm import Payment
from services.payments.adapters.repositories import payments
from services.payments.domain.gateway import PaymentMethod
from services.payments.domain.payments import AWAITING_GATEWAY, PaymentStatus
from services.payments.service_layer.gateway_calls import poll_transaction
from services.payments.service_layer.gateway_news import settle_call
from services.payments.service_layer.payment_actions import void_payment
from services.payments.service_layer.settings import PaymentSettings
from shared.db import UnitOfWork


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
        payment = payments.get(uow.session, payment_id)
        if payment is None or payment.status not in AWAITING_GATEWAY:
            return None if payment is None else payment.status
        gateway_name, reference = payment.gateway, payment.gateway_reference
    gateway = settings.gateway(gateway_name)
    outcome = poll_transaction(gateway, payment_id, reference)
    return settle_call(
        uow,
        payment_id,
        outcome,
        refused_fails=False,
        stray_charge_check_after=settings.stray_charge_check_after,
    ).status


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
    payment, _ = void_payment(uow, payment_id, settings, reason)
    return payment.status
