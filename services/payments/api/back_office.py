"""The back office's views of payments, across every marketplace, for Hirfa's operators (scope
``payments:oversee``): what needs attention, and the figures of a period."""

from __future__ import annotations

from flask_smorest import Blueprint

from services.payments.api.context import service_context, unit_of_work
from services.payments.api.schemas import (
    BackOfficeDisputeArgsSchema,
    BackOfficeDisputePageSchema,
    BackOfficePaymentPageSchema,
    PaymentStatsArgsSchema,
    PaymentStatsSchema,
    WebhookFailuresPageSchema,
)
from services.payments.service_layer import back_office
from shared.auth.flask import current_principal, require_scopes
from shared.openapi import problems
from shared.pagination import PageArgsSchema
from shared.problem_codes import ROLE_NOT_ALLOWED

blp = Blueprint(
    "back_office",
    __name__,
    url_prefix="/v1/back-office",
    description="Operators' views across marketplaces: what needs attention, and the day's figures.",
)
SCOPE = "payments:oversee"


@blp.route("/reversals-to-review", methods=["GET"])
@require_scopes(SCOPE)
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, BackOfficePaymentPageSchema)
@problems(ROLE_NOT_ALLOWED)
def reversals_to_review(args):
    """Payments whose reversal needs review, oldest first.

    The gateway holds money for a payment that failed or was canceled and would not give it back
    (``reversal_status: failed``). Operators only (``role_not_allowed`` for anyone else)."""
    return back_office.reversals_to_review(unit_of_work(), current_principal(), **args)


@blp.route("/stuck-payments", methods=["GET"])
@require_scopes(SCOPE)
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, BackOfficePaymentPageSchema)
@problems(ROLE_NOT_ALLOWED)
def stuck_payments(args):
    """Payments stuck in ``processing``, oldest first.

    Those still processing longer after they were confirmed (or asked to capture) than the recovery
    job waits before asking the gateway itself (``PAYMENTS_RECOVERY_AFTER_SECONDS``). Operators
    only."""
    return back_office.stuck_payments(unit_of_work(), current_principal(), service_context().payments, **args)


@blp.route("/disputes", methods=["GET"])
@require_scopes(SCOPE)
@blp.arguments(BackOfficeDisputeArgsSchema, location="query")
@blp.response(200, BackOfficeDisputePageSchema)
@problems(ROLE_NOT_ALLOWED)
def disputes(args):
    """Disputes of every marketplace, oldest first.

    Open ones by default; ``status`` asks for won or lost ones instead. Operators only."""
    return back_office.disputes(unit_of_work(), current_principal(), **args)


@blp.route("/webhook-failures", methods=["GET"])
@require_scopes(SCOPE)
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, WebhookFailuresPageSchema)
@problems(ROLE_NOT_ALLOWED)
def webhook_failures(args):
    """Webhook deliveries that failed, per marketplace.

    Deliveries given up on, or retrying after failed attempts, counted per marketplace in id order
    (the cursor is a marketplace id); marketplaces with none are left out. Operators only."""
    return back_office.webhook_failures(unit_of_work(), current_principal(), **args)


@blp.route("/payment-stats", methods=["GET"])
@require_scopes(SCOPE)
@blp.arguments(PaymentStatsArgsSchema, location="query")
@blp.response(200, PaymentStatsSchema)
@problems(ROLE_NOT_ALLOWED)
def payment_stats(args):
    """The figures of the payments created in a period, per method.

    How many, how many succeeded and failed, the success rate, and the volume the succeeded ones
    captured. Operators only."""
    return back_office.payment_stats(unit_of_work(), current_principal(), **args)
