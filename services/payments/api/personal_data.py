"""For onboarding's personal-data export: everything payments holds about one artisan."""

from __future__ import annotations

from flask_smorest import Blueprint

from services.payments.api.context import unit_of_work
from services.payments.service_layer.personal_data import artisan_personal_data
from shared.auth.flask import require_scopes
from shared.auth.scopes import PERSONAL_DATA_COLLECT

blp = Blueprint(
    "personal_data",
    __name__,
    url_prefix="/v1/artisans",
    description="For onboarding (scope personal_data:collect): an artisan's data, for their export.",
)


@blp.route("/<string:artisan_id>/personal-data", methods=["GET"])
@require_scopes(PERSONAL_DATA_COLLECT)
@blp.response(200, description="The payee, its marketplaces, payments, refunds and disputes.")
def personal_data(artisan_id):
    """Everything payments holds about an artisan, across every marketplace.

    Only onboarding's own token reads it, to build the artisan's personal-data archive
    (``GET /v1/artisans/{id}/personal-data`` on onboarding)."""
    return artisan_personal_data(unit_of_work(), artisan_id)
