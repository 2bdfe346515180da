"""Payouts to artisans' bank accounts, automatic payout schedules, and the bank's transfer callbacks."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, pre_load, validate

from services.accounts.domain.payouts import FAILURE_CODES, PayoutStatus, ScheduleInterval
from services.accounts.payout_wiring import payout_settings
from services.accounts.service_layer import payout_schedules, payouts
from shared.auth.flask import current_principal, require_any_scope
from shared.idempotency import HEADER as IDEMPOTENCY_KEY_HEADER
from shared.idempotency import idempotent
from shared.money import CurrencyCode, MinorUnits, MoneySchema
from shared.pagination import PageArgsSchema, page_schema

blp = Blueprint("payouts", __name__, url_prefix="/v1", description="Payouts to artisans' bank accounts.")

# Artisans (``payouts:request``, their own) and operators (``payouts:write``) request payouts; bank
# partners also hold ``payouts:write`` but are refused by the service layer: they only read.
REQUEST_SCOPES = ("payouts:write", "payouts:request")
READ_SCOPES = ("payouts:write", "payouts:request", "balances:read", "self:read")
# Far beyond any payout, well inside a 64-bit column.
MAX_AMOUNT = 10**13
IDEMPOTENCY_HEADER_DOC = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": True,
    "schema": {"type": "string"},
}


def _context():
    return current_app.extensions["hirfa"]


def flatten_money(data: Any, field: str) -> Any:
    """Read ``field: {amount, currency}`` (the shape answers use) as ``field: amount, currency: …``."""
    if not isinstance(data, dict) or not isinstance(data.get(field), dict):
        return data
    money = data[field]
    if set(money) - {"amount", "currency"}:
        raise ValidationError({field: ["Must be an integer of minor units or an object {amount, currency}."]})
    if "currency" in money and "currency" in data and data["currency"] != money["currency"]:
        raise ValidationError({"currency": [f"Differs from the currency of {field}."]})
    flat = {**data, field: money.get("amount")}
    if "currency" in money:
        flat["currency"] = money["currency"]
    return flat


class PayoutRequestSchema(Schema):
    artisan_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    amount = MinorUnits(
        required=True,
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "Minor units (centimes), with `currency`; or an object {amount, currency}."},
    )
    currency = CurrencyCode(required=True, metadata={"example": "MAD"})
    bank_account_id = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "One of the artisan's bank accounts; default: their default account."},
    )
    description = fields.String(load_default=None, validate=validate.Length(max=200))

    @pre_load
    def accept_money_object(self, data: Any, **_kwargs: Any) -> Any:
        return flatten_money(data, "amount")


class PayoutSchema(Schema):
    id = fields.String(required=True, metadata={"example": "po_01JD8Z6W5Q0T2C7S9K3M4N5P6R"})
    object = fields.Constant("payout")
    artisan_id = fields.String()
    amount = fields.Nested(MoneySchema, attribute="money")
    status = fields.String(metadata={"description": "pending, in_transit, then paid or failed."})
    failure_code = fields.String(
        allow_none=True, metadata={"description": f"When failed: {', '.join(FAILURE_CODES)}."}
    )
    bank_account_id = fields.String()
    bank_code = fields.String(metadata={"description": "The artisan's bank."})
    rib_last4 = fields.String(metadata={"description": "The last four digits of the account's RIB."})
    holder_name = fields.String()
    description = fields.String(allow_none=True)
    source = fields.String(metadata={"description": "api, or schedule for an automatic payout."})
    bank_reference = fields.String(
        attribute="partner_reference",
        allow_none=True,
        metadata={"description": "The bank partner's transfer id, once it has one."},
    )
    created_at = fields.DateTime()
    submitted_at = fields.DateTime(allow_none=True)
    paid_at = fields.DateTime(allow_none=True)
    failed_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()


PayoutPageSchema = page_schema(PayoutSchema)


class PayoutListArgsSchema(PageArgsSchema):
    artisan_id = fields.String(validate=validate.Length(min=1, max=40))
    status = fields.String(validate=validate.OneOf([str(status) for status in PayoutStatus]))


class ScheduleRequestSchema(Schema):
    interval = fields.String(
        required=True, validate=validate.OneOf([str(interval) for interval in ScheduleInterval])
    )
    threshold = MinorUnits(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "With interval=threshold: minor units with `currency`, or an object."},
    )
    currency = CurrencyCode(load_default=None)

    @pre_load
    def accept_money_object(self, data: Any, **_kwargs: Any) -> Any:
        return flatten_money(data, "threshold")


class ScheduleSchema(Schema):
    object = fields.Constant("payout_schedule")
    artisan_id = fields.String()
    interval = fields.String()
    threshold = fields.Nested(MoneySchema, allow_none=True)
    updated_by = fields.String(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


class CallbackAckSchema(Schema):
    received = fields.Boolean()
    applied = fields.Boolean()
    status = fields.String()


@blp.route("/payouts")
class Payouts(MethodView):
    @require_any_scope(*REQUEST_SCOPES)
    @idempotent
    @blp.arguments(PayoutRequestSchema)
    @blp.response(201, PayoutSchema)
    @blp.doc(parameters=[IDEMPOTENCY_HEADER_DOC])
    def post(self, body):
        """Pay part of the artisan's available balance to their default (or the named) bank account.

        The payout is created ``pending`` with its ledger entry, then handed to the bank
        (``in_transit``); the bank's callback makes it ``paid`` or ``failed`` (the funds come back).
        Artisans request their own payouts, operators anyone's."""
        context = _context()
        command = payouts.RequestPayout(**body, idempotency_key=request.headers.get(IDEMPOTENCY_KEY_HEADER))
        settings = payout_settings(context)
        payout = payouts.request_payout(context.uow_factory(), command, current_principal(), settings)
        return payout, 201, {"Location": f"/v1/payouts/{payout.id}"}

    @require_any_scope(*READ_SCOPES)
    @blp.arguments(PayoutListArgsSchema, location="query")
    @blp.response(200, PayoutPageSchema)
    def get(self, args):
        """Payouts you can see, oldest first: artisans their own, marketplaces their artisans'."""
        return payouts.list_payouts(_context().uow_factory(), current_principal(), **args)


@blp.route("/payouts/<string:payout_id>")
class PayoutById(MethodView):
    @require_any_scope(*READ_SCOPES)
    @blp.response(200, PayoutSchema)
    def get(self, payout_id):
        """One payout."""
        return payouts.get_payout(_context().uow_factory(), payout_id, current_principal())


@blp.route("/artisans/<string:artisan_id>/payout-schedule")
class PayoutScheduleView(MethodView):
    @require_any_scope(*REQUEST_SCOPES)
    @blp.arguments(ScheduleRequestSchema)
    @blp.response(200, ScheduleSchema)
    def put(self, body, artisan_id):
        """Automatic payouts of the whole available balance: ``manual`` (none), ``daily``, ``weekly``,
        or ``threshold`` (once it reaches ``threshold``, at most daily). Windows: UTC days, ISO weeks."""
        context = _context()
        return payout_schedules.set_schedule(
            context.uow_factory(),
            artisan_id,
            payout_schedules.SetSchedule(**body),
            current_principal(),
            payout_settings(context),
        )

    @require_any_scope(*READ_SCOPES)
    @blp.response(200, ScheduleSchema)
    def get(self, artisan_id):
        """The artisan's payout schedule (``manual`` until one is set)."""
        context = _context()
        return payout_schedules.get_schedule(
            context.uow_factory(), artisan_id, current_principal(), payout_settings(context)
        )


@blp.route("/banks/<string:bank>/callbacks")
class BankCallbacks(MethodView):
    @blp.response(200, CallbackAckSchema)
    @blp.doc(
        security=[], description="Signed by the bank: `Bank-Signature: t=…,v1=HMAC-SHA256(secret, t.body)`."
    )
    def post(self, bank):
        """A partner bank's news of a transfer (``transfer.paid``, ``transfer.failed``). Verified against
        the raw body; duplicates and late deliveries change nothing."""
        context = _context()
        return payouts.handle_callback(
            context.uow_factory(), bank, request.headers, request.get_data(), payout_settings(context)
        )
