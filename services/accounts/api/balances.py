"""Artisan balances."""

from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from services.accounts.service_layer.ledger import artisan_balance
from shared.auth.flask import current_principal, require_any_scope
from shared.money import MoneyWithDecimalSchema

blp = Blueprint("balances", __name__, url_prefix="/v1/artisans", description="Artisan balances.")


class BalanceSchema(Schema):
    object = fields.Constant("balance")
    artisan_id = fields.String(required=True)
    pending = fields.Nested(
        MoneyWithDecimalSchema, required=True, metadata={"description": "Inside the hold period."}
    )
    available = fields.Nested(
        MoneyWithDecimalSchema, required=True, metadata={"description": "Can be paid out."}
    )
    # Null for an artisan whose KYC limits accounts has not heard of yet.
    kyc_tier = fields.Integer(
        allow_none=True, metadata={"description": "The artisan's KYC tier (null until known)."}
    )
    cap = fields.Nested(
        MoneyWithDecimalSchema, allow_none=True, metadata={"description": "Bank Al-Maghrib cap for the tier."}
    )


@blp.route("/<string:artisan_id>/balance", methods=["GET"])
@require_any_scope("balances:read", "self:read")
@blp.response(200, BalanceSchema)
def balance(artisan_id):
    """An artisan's pending and available balances, with their KYC tier and its cap."""
    return artisan_balance(current_app.extensions["hirfa"].uow_factory(), artisan_id, current_principal())
