"""Payees: what payments knows of an artisan (KYC tier and cap), for a marketplace's checkout."""

from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from services.payments.service_layer.projections import get_payee
from shared.auth.flask import current_principal, require_scopes
from shared.money import MoneySchema

blp = Blueprint(
    "payees", __name__, url_prefix="/v1/payees", description="Payees (artisans as payments sees them)."
)


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


@blp.route("/<string:artisan_id>", methods=["GET"])
@require_scopes("payments:read")
@blp.response(200, PayeeSchema)
def payee(artisan_id):
    """Whether an artisan can be paid, and up to what cap."""
    return get_payee(current_app.extensions["hirfa"].uow_factory(), artisan_id, current_principal())
