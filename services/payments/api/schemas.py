"""The payments API's schemas: what each operation takes and answers (its OpenAPI document too).

The objects themselves (payment, refund, dispute, attempt) are dumped by the schemas in
``service_layer/representations.py``, which the webhook events' snapshots use as well.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from services.payments.domain.gateway import DisputeStatus, RefundStatus
from services.payments.domain.payments import PaymentStatus
from services.payments.domain.webhooks import (
    ALL_EVENT_TYPES,
    MAX_URL_LENGTH,
    WEBHOOK_EVENT_TYPES,
    DeliveryStatus,
    EndpointStatus,
)
from services.payments.service_layer.representations import (
    DisputeSchema,
    GatewayAttemptSchema,
    PaymentSchema,
    RefundSchema,
)
from shared.money import CURRENCIES, CurrencyCode, MinorUnits, MoneySchema
from shared.pagination import PageArgsSchema, page_schema
from shared.phones import MobileProblem, NotAMoroccanMobile, parse_moroccan_mobile

__all__ = ["DisputeSchema", "GatewayAttemptSchema", "PaymentSchema", "RefundSchema"]

MAX_AMOUNT = 10**13  # far beyond any payment, inside a 64-bit column; the configured range is narrower


class Metadata(fields.Dict):
    """Up to 20 string keys and short string values, kept for the marketplace's own use."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            keys=fields.String(validate=validate.Length(min=1, max=40)),
            values=fields.String(validate=validate.Length(max=500)),
            validate=validate.Length(max=20),
            load_default=dict,
            **kwargs,
        )


# -- payments, refunds, disputes --------------------------------------------------------------------


class PaymentCreateSchema(Schema):
    artisan_id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "The payee (art_…), registered by your marketplace."},
    )
    amount = MinorUnits(
        required=True,
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "What the buyer pays, in centimes."},
    )
    currency = CurrencyCode(required=True, metadata={"example": "MAD"})
    application_fee = MinorUnits(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_AMOUNT),
        metadata={"description": "Your commission, in centimes; at most amount."},
    )
    payment_method_type = fields.String(required=True, validate=validate.OneOf(["card", "mobile_wallet"]))
    capture_method = fields.String(load_default="automatic", validate=validate.OneOf(["automatic", "manual"]))
    description = fields.String(load_default=None, validate=validate.Length(max=500))
    metadata = Metadata()
    order_reference = fields.String(load_default=None, validate=validate.Length(min=1, max=200))

    def load(self, data: Any, *, many: Any = None, partial: Any = None, unknown: Any = None) -> Any:
        """What marshmallow loads, read directly when the body is plainly valid (every field of the
        exact JSON type, in range): this runs in every creation, and marshmallow takes several
        times as long. Anything else, every refusal included, is marshmallow's to load and word;
        tests/unit/test_payment_create_schema.py holds the two to the same result."""
        if many is None and partial is None and unknown is None and self.unknown == RAISE and not self.many:
            loaded = _plainly_valid_creation(data)
            if loaded is not None:
                return loaded
        return super().load(data, many=many, partial=partial, unknown=unknown)


_CREATION_FIELDS = frozenset(PaymentCreateSchema._declared_fields)
_ABSENT = object()
# The fields _plainly_valid_creation reads, and no hook: a field or a hook (pre_load, validates…)
# added to the schema stops payments at import until the fast path is taught it, never a silent
# drift between the two readings.
_FAST_PATH_FIELDS = frozenset(
    {
        "artisan_id",
        "amount",
        "currency",
        "application_fee",
        "payment_method_type",
        "capture_method",
        "description",
        "metadata",
        "order_reference",
    }
)
if _CREATION_FIELDS != _FAST_PATH_FIELDS or any(PaymentCreateSchema._hooks.values()):
    raise RuntimeError("PaymentCreateSchema changed: teach _plainly_valid_creation its fields and hooks")


def _text(value: Any, shortest: int, longest: int) -> bool:
    return type(value) is str and shortest <= len(value) <= longest


def _plainly_valid_creation(data: Any) -> dict[str, Any] | None:
    """``PaymentCreateSchema``'s load of ``data`` if it certainly succeeds, else None (let
    marshmallow decide): a conservative reading of the same rules, never a looser one."""
    if type(data) is not dict or not data.keys() <= _CREATION_FIELDS:
        return None
    artisan_id = data.get("artisan_id")
    amount = data.get("amount")
    currency = data.get("currency")
    application_fee = data.get("application_fee", 0)
    payment_method_type = data.get("payment_method_type")
    capture_method = data.get("capture_method", "automatic")
    description = data.get("description")
    order_reference = data.get("order_reference")
    metadata = data.get("metadata", _ABSENT)
    if not (
        _text(artisan_id, 1, 40)
        and type(amount) is int
        and 1 <= amount <= MAX_AMOUNT
        and type(currency) is str
        and currency in CURRENCIES
        and type(application_fee) is int
        and 0 <= application_fee <= MAX_AMOUNT
        and payment_method_type in _METHODS
        and type(payment_method_type) is str
        and capture_method in _CAPTURE_METHODS
        and type(capture_method) is str
        and (description is None or _text(description, 0, 500))
        and (order_reference is None or _text(order_reference, 1, 200))
    ):
        return None
    if metadata is _ABSENT:
        metadata = {}
    elif type(metadata) is not dict or len(metadata) > 20:
        return None
    elif all(_text(key, 1, 40) and _text(value, 0, 500) for key, value in metadata.items()):
        metadata = dict(metadata)
    else:
        return None
    return {
        "artisan_id": artisan_id,
        "amount": amount,
        "currency": currency,
        "application_fee": application_fee,
        "payment_method_type": payment_method_type,
        "capture_method": capture_method,
        "description": description,
        "metadata": metadata,
        "order_reference": order_reference,
    }


_METHODS = ("card", "mobile_wallet")
_CAPTURE_METHODS = ("automatic", "manual")


class MoroccanMobile(fields.String):
    """A Moroccan mobile number in any usual notation, loaded as E.164 (+2126…, +2127…)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_moroccan_mobile(text)
        except NotAMoroccanMobile as exc:
            if exc.problem is MobileProblem.NOT_A_NUMBER:
                raise ValidationError("Not a phone number.") from None
            raise ValidationError("Must be a Moroccan mobile number, e.g. +212612345678.") from None


class PaymentConfirmSchema(Schema):
    card_token = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^tok_[A-Za-z0-9_]{6,100}$", error="Not a card token (tok_…)."),
        metadata={
            "description": "The token the gateway's tokenisation gave the buyer's browser. Never a card number.",
            "example": "tok_4wGa9kQ2xY7s",
        },
    )
    phone = MoroccanMobile(
        load_default=None,
        validate=validate.Length(max=30),
        metadata={"description": "Mobile wallet: the buyer's Moroccan mobile number."},
    )
    return_url = fields.Url(
        load_default=None,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=2048),
        metadata={"description": "Card: where the buyer's browser goes after 3-D Secure."},
    )


class PaymentCaptureSchema(Schema):
    amount_to_capture = MinorUnits(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "Default: the whole authorised amount. Once only."},
    )


class PaymentListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf([str(status) for status in PaymentStatus]))
    artisan_id = fields.String(validate=validate.Length(min=1, max=40))
    created_gte = fields.AwareDateTime(
        default_timezone=None, metadata={"description": "Created at or after (ISO 8601 with offset)."}
    )
    created_lte = fields.AwareDateTime(
        default_timezone=None, metadata={"description": "Created at or before (ISO 8601 with offset)."}
    )


class UnpostedPaymentArgsSchema(PageArgsSchema):
    succeeded_before = fields.AwareDateTime(
        required=True,
        default_timezone=None,
        metadata={"description": "Only payments that succeeded before this time (ISO 8601 with offset)."},
    )


class UnpostedPaymentSchema(Schema):
    object = fields.Constant("unposted_payment")
    payment_id = fields.String(required=True)
    artisan_id = fields.String(required=True)
    marketplace_id = fields.String(required=True)
    amount = fields.Nested(MoneySchema, required=True, metadata={"description": "The amount captured."})
    succeeded_at = fields.DateTime(required=True)


UnpostedPaymentPageSchema = page_schema(UnpostedPaymentSchema)


class RefundCreateSchema(Schema):
    payment_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    amount = MinorUnits(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "Default: all that is left to refund."},
    )
    currency = CurrencyCode(load_default=None)
    application_fee_refunded = MinorUnits(
        load_default=None,
        validate=validate.Range(min=0, max=MAX_AMOUNT),
        metadata={"description": "How much of your commission to give back; default: in proportion."},
    )
    reason = fields.String(
        load_default=None,
        validate=validate.OneOf(["requested_by_customer", "duplicate", "fraudulent", "other"]),
    )
    metadata = Metadata()


class RefundListArgsSchema(PageArgsSchema):
    payment_id = fields.String(validate=validate.Length(min=1, max=40))
    status = fields.String(validate=validate.OneOf([str(status) for status in RefundStatus]))


class DisputeListArgsSchema(PageArgsSchema):
    payment_id = fields.String(validate=validate.Length(min=1, max=40))
    status = fields.String(validate=validate.OneOf([str(status) for status in DisputeStatus]))


class CallbackAckSchema(Schema):
    received = fields.Boolean()
    applied = fields.Boolean()
    duplicate = fields.Boolean()


PaymentPageSchema = page_schema(PaymentSchema)
RefundPageSchema = page_schema(RefundSchema)
DisputePageSchema = page_schema(DisputeSchema)


class AttemptListSchema(Schema):
    data = fields.List(fields.Nested(GatewayAttemptSchema), required=True)


# -- payees ------------------------------------------------------------------------------------------


class PayeeSchema(Schema):
    artisan_id = fields.String(required=True)
    object = fields.Constant("payee")
    kyc_tier = fields.Integer()
    tier_cap = fields.Nested(MoneySchema, metadata={"description": "Bank Al-Maghrib cap for the tier."})
    kyc_status = fields.String(
        metadata={"description": "active, or rejected after a disqualifying KYC decision."}
    )
    kyc_version = fields.Integer(
        metadata={"description": "Onboarding's count of KYC changes this view reflects."}
    )
    can_accept_payments = fields.Boolean(metadata={"description": "Tier 1 or more, and KYC not rejected."})
    payout_eligible = fields.Boolean()
    updated_at = fields.DateTime()


# -- webhooks ----------------------------------------------------------------------------------------

EVENT_TYPES_DOC = ", ".join(WEBHOOK_EVENT_TYPES)


class WebhookEndpointCreateSchema(Schema):
    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata={
            "description": "Absolute http(s) URL (https in production) we POST events to.",
            "example": "https://shop.example.ma/hirfa/webhooks",
        },
    )
    event_types = fields.List(
        fields.String(validate=validate.Length(min=1, max=60)),
        required=True,
        validate=validate.Length(min=1, max=len(WEBHOOK_EVENT_TYPES) + 1),
        metadata={"description": f'The events to send: any of {EVENT_TYPES_DOC}; or ["*"] for all of them.'},
    )
    description = fields.String(load_default=None, validate=validate.Length(max=200))


class WebhookEndpointSchema(Schema):
    id = fields.String(required=True, metadata={"example": "we_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("webhook_endpoint")
    url = fields.String()
    description = fields.String(allow_none=True)
    event_types = fields.List(
        fields.String(), metadata={"description": f'["{ALL_EVENT_TYPES}"] means every type.'}
    )
    status = fields.String(metadata={"description": "enabled, or disabled once deleted."})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    disabled_at = fields.DateTime(allow_none=True)


class WebhookEndpointCreatedSchema(WebhookEndpointSchema):
    secret = fields.String(
        required=True,
        metadata={
            "description": "The signing secret (`whsec_…`). Shown in this answer only: store it now.",
            "example": "whsec_5f1c…",
        },
    )


WebhookEndpointPageSchema = page_schema(WebhookEndpointSchema)


class WebhookEndpointListArgsSchema(PageArgsSchema):
    status = fields.String(
        load_default=str(EndpointStatus.ENABLED),
        validate=validate.OneOf([str(status) for status in EndpointStatus]),
        metadata={"description": "enabled (default), or disabled for deleted endpoints."},
    )


class WebhookDeliverySchema(Schema):
    id = fields.String(required=True, metadata={"example": "whd_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("webhook_delivery")
    endpoint_id = fields.String()
    event_id = fields.String()
    event_type = fields.String()
    status = fields.String(
        metadata={
            "description": "pending (another attempt is scheduled), delivered (a 2xx), failed (no 2xx "
            "within the retry period), canceled (the endpoint was deleted)."
        }
    )
    attempt_count = fields.Integer()
    last_status_code = fields.Integer(allow_none=True, metadata={"description": "Your answer's HTTP status."})
    last_error = fields.String(
        allow_none=True,
        metadata={
            "description": "When there was no answer: timeout, connection_refused, connection_error, "
            "dns_error, dns_timeout, tls_error, address_not_allowed."
        },
    )
    last_attempt_at = fields.DateTime(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    failed_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class WebhookAttemptSchema(Schema):
    number = fields.Integer()
    trigger = fields.String(metadata={"description": "automatic, or manual (a retry you asked for)."})
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()
    attempted_at = fields.DateTime()


class WebhookDeliveryDetailSchema(WebhookDeliverySchema):
    attempts = fields.List(fields.Nested(WebhookAttemptSchema), metadata={"description": "Oldest first."})


WebhookDeliveryPageSchema = page_schema(WebhookDeliverySchema)


class WebhookDeliveryListArgsSchema(PageArgsSchema):
    endpoint_id = fields.String(validate=validate.Length(min=1, max=40))
    event_type = fields.String(validate=validate.OneOf(WEBHOOK_EVENT_TYPES))
    event_id = fields.String(validate=validate.Length(min=1, max=40))
    status = fields.String(validate=validate.OneOf([str(status) for status in DeliveryStatus]))


# -- the back office (operators, across marketplaces) ------------------------------------------------


class BackOfficePaymentSchema(PaymentSchema):
    waiting_since = fields.Function(
        lambda payment: (
            payment.capture_requested_at or payment.confirmed_at or payment.created_at
        ).isoformat(),
        metadata={
            "format": "date-time",
            "description": "When the payment was last asked of the gateway: the capture if one was asked "
            "for, else the confirmation.",
        },
    )
    gateway_checked_at = fields.DateTime(
        allow_none=True, metadata={"description": "When the gateway was last asked or told anything."}
    )


BackOfficePaymentPageSchema = page_schema(BackOfficePaymentSchema)


class BackOfficeDisputeSchema(DisputeSchema):
    marketplace_id = fields.String()
    created_at = fields.DateTime()


BackOfficeDisputePageSchema = page_schema(BackOfficeDisputeSchema)


class BackOfficeDisputeArgsSchema(PageArgsSchema):
    status = fields.String(
        load_default=str(DisputeStatus.OPEN),
        validate=validate.OneOf([str(status) for status in DisputeStatus]),
        metadata={"description": "open (default), won or lost."},
    )


class WebhookFailuresSchema(Schema):
    object = fields.Constant("webhook_failures")
    marketplace_id = fields.String(required=True)
    failed = fields.Integer(
        required=True, metadata={"description": "Deliveries given up on: no 2xx within the retry period."}
    )
    retrying = fields.Integer(
        required=True,
        metadata={"description": "Deliveries whose attempts so far failed, another one scheduled."},
    )
    last_attempt_at = fields.DateTime(allow_none=True)


WebhookFailuresPageSchema = page_schema(WebhookFailuresSchema)


class PaymentStatsArgsSchema(Schema):
    created_gte = fields.AwareDateTime(
        required=True,
        default_timezone=None,
        metadata={"description": "Payments created at or after (ISO 8601 with offset)."},
    )
    created_lt = fields.AwareDateTime(
        load_default=None,
        default_timezone=None,
        metadata={"description": "…and before (default: now). At most 92 days after created_gte."},
    )


class MethodFiguresSchema(Schema):
    payment_method_type = fields.String(required=True)
    count = fields.Integer(
        required=True, metadata={"description": "Payments created, whatever became of them."}
    )
    succeeded = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    success_rate = fields.Float(
        allow_none=True,
        metadata={
            "description": "succeeded ÷ (succeeded + failed), 0 to 1; null when none was decided yet "
            "(canceled payments and those under way count neither way)."
        },
    )
    volume = fields.List(
        fields.Nested(MoneySchema), metadata={"description": "Captured by the succeeded ones, per currency."}
    )


class PaymentStatsSchema(Schema):
    object = fields.Constant("payment_stats")
    created_gte = fields.DateTime(required=True)
    created_lt = fields.DateTime(required=True)
    count = fields.Integer(required=True)
    volume = fields.List(fields.Nested(MoneySchema), required=True)
    by_method = fields.List(
        fields.Nested(MethodFiguresSchema), required=True, metadata={"description": "card, mobile_wallet."}
    )
