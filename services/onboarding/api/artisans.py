"""Artisans, as marketplaces register and read them."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from services.onboarding import problems as codes
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
from shared.openapi import problems

blp = Blueprint("artisans", __name__, url_prefix="/v1/artisans", description="Artisans.")


@blp.route("")
class Artisans(MethodView):
    @require_scopes("artisans:write")
    @idempotent
    @blp.arguments(RegisterArtisanSchema)
    @blp.response(201, ArtisanSchema)
    @blp.alt_response(200, schema=ArtisanSchema, description="Already registered by this marketplace.")
    @problems(
        codes.DUPLICATE_IDENTITY,
        codes.INVALID_PHONE,
        codes.INVALID_CIN,
        codes.INVALID_DATE_OF_BIRTH,
        codes.UNDERAGE,
        codes.INVALID_FULL_NAME,
        codes.INVALID_ICE,
    )
    def post(self, body):
        """Register an artisan.

        The artisan starts at KYC tier 0 and is screened against the sanctions and PEP lists. One
        person is one artisan: re-registering your own artisan answers them (200); a CIN or phone
        another artisan holds is 409 ``duplicate_identity``. When several details break the rules,
        ``errors`` lists each (code ``validation_error``); a single one answers its own code."""
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
        """List the artisans you can see, oldest first.

        A marketplace sees the artisans it registered; compliance officers see every artisan.
        Filter by tier, status or region."""
        return list_artisans(service_context().uow_factory(), current_principal(), **args)


@blp.route("/kyc-funnel", methods=["GET"])
@require_scopes("artisans:read")
@blp.response(200, KycFunnelSchema)
def funnel():
    """How many of the artisans you can see are at each KYC tier.

    Active artisans per tier, and how many were rejected or are suspended: the back office's
    funnel, or a marketplace's own."""
    return kyc_funnel(service_context().uow_factory(), current_principal(), service_context().tiers)


@blp.route("/<string:artisan_id>")
class ArtisanById(MethodView):
    @require_any_scope("artisans:read", "self:read")
    @blp.response(200, ArtisanSchema)
    def get(self, artisan_id):
        """One artisan.

        Their identity (CIN and phone masked), region, craft, KYC tier and status. An artisan's
        token reads their own profile only; anyone else's is 404, as for an artisan another
        marketplace registered."""
        return get_artisan(service_context().uow_factory(), artisan_id, current_principal())
