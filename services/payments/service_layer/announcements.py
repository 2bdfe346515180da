"""Telling others about a change, inside the transaction that makes it.

Money movements go to Kafka through the outbox (``payments.events``, keyed by artisan): accounts
posts the ledger from them. Every change a marketplace may care about becomes a webhook event for
its endpoints. Both are written with the change itself, so neither is ever lost nor sent for a
change that rolled back.
"""

from __future__ import annotations

from services.payments.adapters.orm import Dispute, Payment, Refund
from services.payments.service_layer.representations import (
    dispute_snapshot,
    payment_snapshot,
    refund_snapshot,
)
from services.payments.service_layer.webhook_events import record_webhook_event
from shared.db import UnitOfWork
from shared.events import make_event


def _money(amount: int, currency: str) -> dict:
    return {"amount": amount, "currency": currency}


def payment_reversal_changed(uow: UnitOfWork, payment: Payment) -> None:
    """Money the gateway holds for a failed or canceled payment is to be given back, was, or could
    not be (``requires_review``): the marketplace hears of each step as ``payment.reversal_updated``.
    No ledger event: that money never reached the ledger."""
    uow.session.flush()
    record_webhook_event(
        uow.session,
        marketplace_id=payment.marketplace_id,
        event_type="payment.reversal_updated",
        object_type="payment",
        object_id=payment.id,
        snapshot=payment_snapshot(payment),
    )


def payment_changed(uow: UnitOfWork, payment: Payment) -> None:
    """Announce the payment's new status (call after setting it)."""
    uow.session.flush()
    record_webhook_event(
        uow.session,
        marketplace_id=payment.marketplace_id,
        event_type=f"payment.{payment.status}",
        object_type="payment",
        object_id=payment.id,
        snapshot=payment_snapshot(payment),
    )
    common = {
        "payment_id": payment.id,
        "artisan_id": payment.artisan_id,
        "marketplace_id": payment.marketplace_id,
        "method": payment.payment_method_type,
        "gateway": payment.gateway,
        "gateway_reference": payment.gateway_reference,
    }
    if payment.status == "succeeded":
        data = {
            **common,
            "amount": _money(payment.amount_captured, payment.currency),
            "application_fee": _money(payment.application_fee, payment.currency),
            "net": _money(payment.amount_captured - payment.application_fee, payment.currency),
            "succeeded_at": payment.succeeded_at.isoformat(),
        }
        uow.add_event(
            make_event("payments.payment.succeeded", subject=payment.id, key=payment.artisan_id, data=data)
        )
    elif payment.status == "failed":
        data = {
            **common,
            "amount": _money(payment.amount, payment.currency),
            "failure_code": payment.failure_code,
            "failure_message": payment.failure_message,
            "failed_at": payment.failed_at.isoformat(),
        }
        uow.add_event(
            make_event("payments.payment.failed", subject=payment.id, key=payment.artisan_id, data=data)
        )


def refund_changed(uow: UnitOfWork, refund: Refund, event_type: str) -> None:
    """``event_type``: refund.created, refund.succeeded or refund.failed."""
    uow.session.flush()
    record_webhook_event(
        uow.session,
        marketplace_id=refund.marketplace_id,
        event_type=event_type,
        object_type="refund",
        object_id=refund.id,
        snapshot=refund_snapshot(refund),
    )
    if event_type == "refund.succeeded":
        uow.add_event(
            make_event(
                "payments.refund.succeeded",
                subject=refund.id,
                key=refund.artisan_id,
                data={
                    "refund_id": refund.id,
                    "payment_id": refund.payment_id,
                    "artisan_id": refund.artisan_id,
                    "marketplace_id": refund.marketplace_id,
                    "amount": _money(refund.amount, refund.currency),
                    "application_fee_refunded": _money(refund.application_fee_refunded, refund.currency),
                    "gateway": refund.gateway,
                    "succeeded_at": refund.succeeded_at.isoformat(),
                },
            )
        )


def dispute_changed(uow: UnitOfWork, dispute: Dispute) -> None:
    """Announce a dispute that just opened, or just closed (won or lost)."""
    uow.session.flush()
    opened = dispute.status == "open"
    record_webhook_event(
        uow.session,
        marketplace_id=dispute.marketplace_id,
        event_type="dispute.opened" if opened else "dispute.closed",
        object_type="dispute",
        object_id=dispute.id,
        snapshot=dispute_snapshot(dispute),
    )
    common = {
        "dispute_id": dispute.id,
        "payment_id": dispute.payment_id,
        "artisan_id": dispute.artisan_id,
        "marketplace_id": dispute.marketplace_id,
        "amount": _money(dispute.amount, dispute.currency),
        "gateway": dispute.gateway,
    }
    if opened:
        data = {**common, "reason": dispute.reason, "opened_at": dispute.opened_at.isoformat()}
        uow.add_event(
            make_event("payments.dispute.opened", subject=dispute.id, key=dispute.artisan_id, data=data)
        )
    else:
        data = {**common, "outcome": dispute.status, "closed_at": dispute.closed_at.isoformat()}
        uow.add_event(
            make_event("payments.dispute.closed", subject=dispute.id, key=dispute.artisan_id, data=data)
        )
