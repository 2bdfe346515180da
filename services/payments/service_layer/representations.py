"""How payments, refunds and disputes look to marketplaces: the API's answers and webhook snapshots.

One set of output schemas serves both, so a webhook's ``data.object`` is exactly what
``GET /v1/payments/{id}`` would have answered at that moment.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields

from services.payments.adapters.orm import Dispute, Payment, Refund
from services.payments.domain.payments import Reversal
from shared.money import Money, MoneySchema


class MoneyOf(fields.Nested):
    """A ``{amount, currency}`` object from an integer column (or a function of the row) and ``currency``."""

    def __init__(self, amount: str | Callable[[Any], int], **kwargs: Any) -> None:
        super().__init__(MoneySchema, **kwargs)
        self._amount = amount

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = None) -> Money:
        amount = self._amount(obj) if callable(self._amount) else getattr(obj, self._amount)
        return Money(amount, obj.currency)


def _net(payment: Payment) -> int:
    captured = payment.amount_captured if payment.status == "succeeded" else payment.amount
    return captured - payment.application_fee


class NextActionSchema(Schema):
    type = fields.String(metadata={"description": "redirect_to_url (3-D Secure) or wallet_approval."})
    redirect_url = fields.String(
        allow_none=True, metadata={"description": "Send the buyer's browser here for 3-D Secure."}
    )
    expires_at = fields.String(
        allow_none=True,
        metadata={
            "format": "date-time",
            "description": "The buyer must approve in their wallet before this.",
        },
    )


class CardSchema(Schema):
    brand = fields.String()
    last4 = fields.String()
    country = fields.String(allow_none=True)


class PaymentSchema(Schema):
    id = fields.String(required=True, metadata={"example": "pay_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("payment")
    status = fields.String(
        metadata={
            "description": "requires_confirmation, requires_action, processing, requires_capture, "
            "succeeded, failed or canceled.",
            "example": "succeeded",
        }
    )
    amount = MoneyOf("amount", metadata={"description": "What the buyer pays."})
    amount_captured = MoneyOf("amount_captured")
    amount_refunded = MoneyOf("amount_refunded", metadata={"description": "Refunds that went through."})
    application_fee = MoneyOf("application_fee", metadata={"description": "The marketplace's commission."})
    application_fee_refunded = MoneyOf("application_fee_refunded")
    net = MoneyOf(
        _net, metadata={"description": "The artisan's share: amount (captured, once succeeded) − commission."}
    )
    artisan_id = fields.String()
    marketplace_id = fields.String()
    payment_method_type = fields.String(metadata={"example": "card"})
    capture_method = fields.String(metadata={"example": "automatic"})
    description = fields.String(allow_none=True, metadata={"example": "Azilal rug, 120 × 80 cm"})
    metadata = fields.Method("_metadata", metadata={"example": {"cart": "c-88412"}})
    order_reference = fields.String(allow_none=True, metadata={"example": "order-1042"})
    next_action = fields.Method("_next_action", allow_none=True, metadata={"example": None})
    failure_code = fields.String(allow_none=True, metadata={"example": None})
    failure_message = fields.String(allow_none=True, metadata={"example": None})
    card = fields.Method(
        "_card", allow_none=True, metadata={"example": {"brand": "visa", "last4": "4242", "country": "MA"}}
    )
    wallet_phone_last4 = fields.String(allow_none=True, metadata={"example": None})
    gateway = fields.String(metadata={"example": "m2t"})
    gateway_reference = fields.String(allow_none=True, metadata={"example": "m2t_tx_5XK2P9"})
    return_url = fields.String(
        allow_none=True, metadata={"example": "https://shop.example.ma/orders/1042/paid"}
    )
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    confirmed_at = fields.DateTime(allow_none=True)
    succeeded_at = fields.DateTime(allow_none=True)
    failed_at = fields.DateTime(allow_none=True, metadata={"example": None})
    canceled_at = fields.DateTime(allow_none=True, metadata={"example": None})
    cancellation_reason = fields.String(
        allow_none=True,
        metadata={
            "example": None,
            "description": "requested, abandoned (3-D Secure never finished), authorisation_expired "
            "(never captured), or voided_at_gateway.",
        },
    )
    reversal_status = fields.String(
        allow_none=True,
        metadata={
            "example": None,
            "description": "Set when the gateway turned out to hold the buyer's money for a payment that "
            "failed or was canceled (a charge that landed late): required, refund_pending, "
            "then voided or refunded; failed when the gateway would not give it back.",
        },
    )
    requires_review = fields.Function(
        lambda payment: payment.reversal_status == Reversal.FAILED,
        metadata={
            "description": "True when money held for this failed or canceled payment could not be given "
            "back automatically: Hirfa's operators are on it."
        },
    )

    def _metadata(self, payment: Payment) -> dict:
        return json.loads(payment.metadata_json or "{}")

    def _next_action(self, payment: Payment) -> dict | None:
        if not payment.next_action_json:
            return None
        return NextActionSchema().dump(json.loads(payment.next_action_json))

    def _card(self, payment: Payment) -> dict | None:
        if payment.card_last4 is None:
            return None
        return {"brand": payment.card_brand, "last4": payment.card_last4, "country": payment.card_country}


class RefundSchema(Schema):
    id = fields.String(required=True, metadata={"example": "re_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("refund")
    payment_id = fields.String()
    artisan_id = fields.String()
    amount = MoneyOf("amount")
    application_fee_refunded = MoneyOf(
        "application_fee_refunded",
        metadata={"description": "The part of the marketplace commission given back."},
    )
    status = fields.String(
        metadata={"description": "pending, then succeeded or failed.", "example": "succeeded"}
    )
    reason = fields.String(allow_none=True, metadata={"example": "Returned by the buyer"})
    failure_code = fields.String(allow_none=True, metadata={"example": None})
    metadata = fields.Method("_metadata")
    gateway_reference = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    succeeded_at = fields.DateTime(allow_none=True)
    failed_at = fields.DateTime(allow_none=True)

    def _metadata(self, refund: Refund) -> dict:
        return json.loads(refund.metadata_json or "{}")


class DisputeSchema(Schema):
    id = fields.String(required=True, metadata={"example": "dp_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("dispute")
    payment_id = fields.String()
    artisan_id = fields.String()
    amount = MoneyOf("amount")
    reason = fields.String()
    status = fields.String(metadata={"description": "open, then won or lost.", "example": "open"})
    gateway_reference = fields.String()
    opened_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)


class GatewayAttemptSchema(Schema):
    object = fields.Constant("gateway_attempt")
    operation = fields.String(
        metadata={"description": "authorise, capture, void, refund, status, callback:<type>…"}
    )
    outcome = fields.String(
        metadata={
            "description": "ok, refused (4xx), unknown (timeout, 5xx), or unmapped "
            "(a genuine callback of a type or status not mapped: "
            "recorded, not applied)."
        }
    )
    raw_status = fields.String(allow_none=True, metadata={"description": "The gateway's own status word."})
    gateway = fields.String()
    gateway_reference = fields.String(allow_none=True)
    refund_id = fields.String(allow_none=True)
    amount = fields.Integer(allow_none=True)
    error_code = fields.String(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


def payment_snapshot(payment: Payment) -> dict[str, Any]:
    """What ``PaymentSchema`` dumps, built directly: a payment is answered and announced on every
    move, and marshmallow takes about ten times as long. ``PaymentSchema`` stays the document of
    record (OpenAPI); tests/unit/test_payment_snapshot.py holds the two to the same output."""
    currency = _text(payment.currency)

    def money(amount: int) -> dict[str, Any]:
        return {"amount": int(amount), "currency": currency}

    return {
        "id": _text(payment.id),
        "object": "payment",
        "status": _text(payment.status),
        "amount": money(payment.amount),
        "amount_captured": money(payment.amount_captured),
        "amount_refunded": money(payment.amount_refunded),
        "application_fee": money(payment.application_fee),
        "application_fee_refunded": money(payment.application_fee_refunded),
        "net": money(_net(payment)),
        "artisan_id": _text(payment.artisan_id),
        "marketplace_id": _text(payment.marketplace_id),
        "payment_method_type": _text(payment.payment_method_type),
        "capture_method": _text(payment.capture_method),
        "description": _text(payment.description),
        "metadata": json.loads(payment.metadata_json or "{}"),
        "order_reference": _text(payment.order_reference),
        "next_action": _next_action(payment),
        "failure_code": _text(payment.failure_code),
        "failure_message": _text(payment.failure_message),
        "card": None
        if payment.card_last4 is None
        else {"brand": payment.card_brand, "last4": payment.card_last4, "country": payment.card_country},
        "wallet_phone_last4": _text(payment.wallet_phone_last4),
        "gateway": _text(payment.gateway),
        "gateway_reference": _text(payment.gateway_reference),
        "return_url": _text(payment.return_url),
        "created_at": _time(payment.created_at),
        "updated_at": _time(payment.updated_at),
        "confirmed_at": _time(payment.confirmed_at),
        "succeeded_at": _time(payment.succeeded_at),
        "failed_at": _time(payment.failed_at),
        "canceled_at": _time(payment.canceled_at),
        "cancellation_reason": _text(payment.cancellation_reason),
        "reversal_status": _text(payment.reversal_status),
        "requires_review": payment.reversal_status == Reversal.FAILED,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _time(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _next_action(payment: Payment) -> dict[str, Any] | None:
    if not payment.next_action_json:
        return None
    action = json.loads(payment.next_action_json)
    return {name: _text(action[name]) for name in ("type", "redirect_url", "expires_at") if name in action}


def refund_snapshot(refund: Refund) -> dict[str, Any]:
    return RefundSchema().dump(refund)


def dispute_snapshot(dispute: Dispute) -> dict[str, Any]:
    return DisputeSchema().dump(dispute)
