"""The compliance review queue: screening hits and tier-3 requests, decided under four-eyes."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from services.onboarding import problems as codes
from services.onboarding.api.context import service_context
from services.onboarding.api.schemas import (
    ReviewDecisionSchema,
    ReviewListArgsSchema,
    ReviewPageSchema,
    ReviewSchema,
)
from services.onboarding.service_layer import kyc
from shared.auth.flask import current_principal, require_scopes
from shared.idempotency import idempotent
from shared.openapi import problems

blp = Blueprint("kyc_reviews", __name__, url_prefix="/v1/kyc-reviews", description="KYC review queue.")


@blp.route("")
class Reviews(MethodView):
    @require_scopes("kyc:review")
    @blp.arguments(ReviewListArgsSchema, location="query")
    @blp.response(200, ReviewPageSchema)
    def get(self, args):
        """Cases to review, oldest first.

        Open ones unless ``status`` says otherwise: screening hits, tier-3 requests and bank-account
        claims, filterable by kind, artisan and region."""
        return kyc.list_reviews(service_context().uow_factory(), **args)


@blp.route("/<string:review_id>")
class ReviewById(MethodView):
    @require_scopes("kyc:review")
    @blp.response(200, ReviewSchema)
    def get(self, review_id):
        """One case, with the screening matches or the requested tier.

        Who submitted it and, once decided, who decided what, with which reason code and note."""
        return kyc.get_review(service_context().uow_factory(), review_id)


@blp.route("/<string:review_id>/decision")
class ReviewDecision(MethodView):
    @require_scopes("kyc:review")
    @idempotent
    @blp.arguments(ReviewDecisionSchema)
    @blp.response(200, ReviewSchema)
    @problems(
        codes.REVIEW_ALREADY_DECIDED,
        codes.FOUR_EYES_VIOLATION,
        codes.TIER_PREREQUISITE_UNMET,
        codes.ARTISAN_REJECTED,
        codes.BANK_ACCOUNT_CLAIM_STALE,
    )
    def post(self, body, review_id):
        """Approve or reject a case, with a reason code and a note.

        Four-eyes: the person who submitted the case may not decide it (``four_eyes_violation``).
        Approving a tier-3 request gives tier 3; rejecting a screening hit rejects the artisan.
        A case is decided once (``review_already_decided``)."""
        context = service_context()
        return kyc.decide_review(
            context.uow_factory(),
            review_id,
            kyc.ReviewDecision(**body),
            reviewer=current_principal().client_id,
            tiers=context.tiers,
        )
