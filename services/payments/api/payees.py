"""Payees: what payments knows of an artisan (KYC tier and cap), for a marketplace's checkout."""

from __future__ import annotations

from flask_smorest import Blueprint

from services.payments.api.context import unit_of_work
from services.payments.api.schemas import PayeeSchema
from services.payments.service_layer.projections import get_payee
from shared.auth.flask import current_principal, require_scopes

blp = Blueprint(
    "payees", __name__, url_prefix="/v1/payees", description="Payees (artisans as payments sees them)."
)


@blp.route("/<string:artisan_id>", methods=["GET"])
@require_scopes("payments:read")
@blp.response(200, PayeeSchema)
def payee(artisan_id):
    """Whether an artisan can be paid, and up to what cap.

    What payments knows of one of your artisans from onboarding's KYC events: their tier, the cap
    it sets on what they may hold, and whether they can accept payments and payouts. An artisan
    onboarding has not told payments of yet (or another marketplace's) is 404."""
    return get_payee(unit_of_work(), artisan_id, current_principal())
