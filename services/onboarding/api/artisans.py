"""Artisans, as marketplaces register and read them."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from services.onboarding.api.context import service_context
from services.onboarding.api.schemas import (
    ArtisanListArgsSchema,
    ArtisanPageSchema,
    ArtisanSchema,
    KycFunnelSchema,
    RegisterArtisanSchema,
)
from services.onboarding.service_layer.artisans import (
    RegisterArtisan,
    get_artisan,
    kyc_funnel,
    list_artisans,
    register_artisan,
)
from services.onboarding.service_layer.screening import make_registration_screener
from shared.auth.flask import current_principal, require_any_scope, require_scopes
from shared.idempotency import idempotent

blp = Blueprint("artisans", __name__, url_prefix="/v1/artisans", description="Artisans.")


@blp.route("")
class Artisans(MethodView):
    @require_scopes("artisans:write")
    @idempotent
    @blp.arguments(RegisterArtisanSchema)
    @blp.response(201, ArtisanSchema)
    @blp.alt_response(200, schema=ArtisanSchema, description="Already registered by this marketplace.")
    @blp.doc(
        parameters=[
            {"in": "header", "name": "Idempotency-Key", "required": True, "schema": {"type": "string"}}
        ]
    )
    def post(self, body):
        """Register an artisan (idempotent; re-registering your own artisan returns it)."""
        context = service_context()
        config = context.config
        registration = register_artisan(
            context.uow_factory(),
            RegisterArtisan(**body),
            marketplace_id=current_principal().client_id,
            cin_pattern=config.cin_pattern,
            minimum_age=config.minimum_age_years,
            tiers=context.tiers,
            screen=make_registration_screener(
                context.screening, threshold=config.screening_threshold, tiers=context.tiers
            ),
        )
        status = 201 if registration.created else 200
        return registration.artisan, status, {"Location": f"/v1/artisans/{registration.artisan.id}"}

    @require_scopes("artisans:read")
    @blp.arguments(ArtisanListArgsSchema, location="query")
    @blp.response(200, ArtisanPageSchema)
    def get(self, args):
        """List the artisans you can see, oldest first."""
        return list_artisans(service_context().uow_factory(), current_principal(), **args)


@blp.route("/kyc-funnel", methods=["GET"])
@require_scopes("artisans:read")
@blp.response(200, KycFunnelSchema)
def funnel():
    """How many of the artisans you can see are at each KYC tier (active ones), and how many were
    rejected or are suspended: the back office's funnel, a marketplace's own."""
    return kyc_funnel(service_context().uow_factory(), current_principal(), service_context().tiers)


@blp.route("/<string:artisan_id>")
class ArtisanById(MethodView):
    @require_any_scope("artisans:read", "self:read")
    @blp.response(200, ArtisanSchema)
    def get(self, artisan_id):
        """One artisan (an artisan's token: their own profile only)."""
        return get_artisan(service_context().uow_factory(), artisan_id, current_principal())
