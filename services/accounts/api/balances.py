"""Artisan balances."""

from __future__ import annotations

from flask_smorest import Blueprint

from services.accounts.api.context import service_context
from services.accounts.api.schemas import BalanceSchema
from services.accounts.service_layer.ledger import artisan_balance
from shared.auth.flask import current_principal, require_any_scope

blp = Blueprint("balances", __name__, url_prefix="/v1/artisans", description="Artisan balances.")


@blp.route("/<string:artisan_id>/balance", methods=["GET"])
@require_any_scope("balances:read", "self:read")
@blp.response(200, BalanceSchema)
def balance(artisan_id):
    """An artisan's pending and available balances, with their KYC tier and its cap.

    Pending: payments still in their hold; available: what can be paid out now. An artisan reads
    their own, a marketplace its artisans', a bank partner those of artisans paid at its bank;
    anyone else's is 404."""
    return artisan_balance(service_context().uow_factory(), artisan_id, current_principal())
