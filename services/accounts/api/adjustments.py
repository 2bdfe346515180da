"""Adjustments and reversals with four-eyes, and marketplace reserves below zero, for operators."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from services.accounts import problems as codes
from services.accounts.api.context import service_context
from services.accounts.api.schemas import (
    AdjustmentArgsSchema,
    AdjustmentDecisionSchema,
    AdjustmentPageSchema,
    AdjustmentRequestSchema,
    AdjustmentSchema,
    ReserveArgsSchema,
    ReservePageSchema,
)
from services.accounts.domain.ledger import AccountRef
from services.accounts.service_layer import adjustments
from services.accounts.service_layer.statements import list_reserves
from shared.auth.flask import current_principal, require_scopes
from shared.idempotency import HEADER as IDEMPOTENCY_KEY_HEADER
from shared.idempotency import idempotent
from shared.openapi import problems
from shared.problem_codes import RESOURCE_NOT_FOUND, UNSUPPORTED_CURRENCY

blp = Blueprint(
    "ledger_adjustments",
    __name__,
    url_prefix="/v1/ledger",
    description="Adjustments and reversals (four-eyes above a configured amount); marketplace reserves.",
)


@blp.route("/adjustments")
class Adjustments(MethodView):
    @require_scopes("ledger:operate")
    @idempotent
    @blp.arguments(AdjustmentRequestSchema)
    @blp.response(201, AdjustmentSchema)
    @problems(
        RESOURCE_NOT_FOUND,
        codes.UNKNOWN_ACCOUNT,
        codes.UNBALANCED_ENTRY,
        codes.ALREADY_REVERSED,
        codes.REVERSAL_PENDING,
        codes.ARTISAN_BALANCE_NEGATIVE,
        codes.TIER_CAP_EXCEEDED,
        codes.LEDGER_CASE_RESOLVED,
        codes.LEDGER_CASE_NEEDS_REPLAY,
        UNSUPPORTED_CURRENCY,
    )
    def post(self, body):
        """Propose a reversal or a manual adjustment, with a reason.

        A reversal names ``reverses_entry_id``: its lines are the entry's, negated. An adjustment
        gives ``lines`` between named accounts, balanced. Up to the configured
        amount it is posted at once (``posted``); above it, it waits (``pending_approval``) for another
        operator's approval. With ``case_id`` (a ledger case, ``lc_…``) the case is resolved when it
        posts; a case resolved meanwhile refuses it (409 ``ledger_case_resolved``)."""
        context = service_context()
        lines = body["lines"]
        command = adjustments.ProposeAdjustment(
            reason=body["reason"],
            lines=None
            if lines is None
            else tuple(
                (AccountRef(line["owner_type"], line["owner_id"], line["kind"]), line["amount"])
                for line in lines
            ),
            currency=body["currency"],
            reverses_entry_id=body["reverses_entry_id"],
            case_id=body["case_id"],
            idempotency_key=request.headers.get(IDEMPOTENCY_KEY_HEADER),
        )
        adjustment = adjustments.request_adjustment(
            context.uow_factory(), command, current_principal(), key_ttl=context.payouts.idempotency_key_ttl
        )
        return adjustment, 201, {"Location": f"/v1/ledger/adjustments/{adjustment.id}"}

    @require_scopes("ledger:operate")
    @blp.arguments(AdjustmentArgsSchema, location="query")
    @blp.response(200, AdjustmentPageSchema)
    def get(self, args):
        """Adjustments and reversals, oldest first.

        Filter by status (``pending_approval``, ``posted``, ``rejected``) or by the ledger case they
        were proposed for."""
        return adjustments.list_adjustments(
            service_context().uow_factory(),
            status=args.get("status"),
            case_id=args.get("case_id"),
            limit=args["limit"],
            starting_after=args["starting_after"],
        )


@blp.route("/adjustments/<string:adjustment_id>")
class AdjustmentById(MethodView):
    @require_scopes("ledger:operate")
    @blp.response(200, AdjustmentSchema)
    def get(self, adjustment_id):
        """One adjustment.

        Its lines, reason, who proposed it and, once decided, who approved or rejected it and the
        journal entry it posted."""
        return adjustments.get_adjustment(service_context().uow_factory(), adjustment_id)


@blp.route("/adjustments/<string:adjustment_id>/approve")
class ApproveAdjustment(MethodView):
    @require_scopes("ledger:operate")
    @blp.arguments(AdjustmentDecisionSchema)
    @blp.response(200, AdjustmentSchema)
    @problems(
        codes.ADJUSTMENT_NOT_PENDING,
        codes.FOUR_EYES_REQUIRED,
        codes.ALREADY_REVERSED,
        codes.ARTISAN_BALANCE_NEGATIVE,
        codes.TIER_CAP_EXCEEDED,
        codes.LEDGER_CASE_RESOLVED,
    )
    def post(self, body, adjustment_id):
        """Approve a waiting adjustment: it is posted.

        Not by its proposer (403 ``four_eyes_required``); not once the ledger case it was proposed
        for is resolved another way (409 ``ledger_case_resolved``)."""
        return adjustments.approve_adjustment(
            service_context().uow_factory(), adjustment_id, current_principal(), note=body["note"]
        )


@blp.route("/adjustments/<string:adjustment_id>/reject")
class RejectAdjustment(MethodView):
    @require_scopes("ledger:operate")
    @blp.arguments(AdjustmentDecisionSchema)
    @blp.response(200, AdjustmentSchema)
    @problems(codes.ADJUSTMENT_NOT_PENDING)
    def post(self, body, adjustment_id):
        """Reject a waiting adjustment: nothing is posted.

        The note says why; the adjustment stays readable, ``rejected``."""
        return adjustments.reject_adjustment(
            service_context().uow_factory(), adjustment_id, current_principal(), note=body["note"]
        )


@blp.route("/reserves")
class Reserves(MethodView):
    @require_scopes("ledger:operate")
    @blp.arguments(ReserveArgsSchema, location="query")
    @blp.response(200, ReservePageSchema)
    def get(self, args):
        """Marketplaces' reserves with their balances.

        With ``below_zero=true``, those below zero only: each a receivable from its marketplace (a
        ``reserve_below_zero`` ledger case is open for it)."""
        return list_reserves(
            service_context().uow_factory(),
            below_zero=args["below_zero"],
            limit=args["limit"],
            starting_after=args["starting_after"],
        )
