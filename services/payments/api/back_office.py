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
from shared.pagination import PageArgsSchema

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
def reversals_to_review(args):
    """Payments whose reversal needs review: the gateway holds money for a payment that failed or was
    canceled and would not give it back (``reversal_status: failed``). Oldest first."""
    return back_office.reversals_to_review(unit_of_work(), current_principal(), **args)


@blp.route("/stuck-payments", methods=["GET"])
@require_scopes(SCOPE)
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, BackOfficePaymentPageSchema)
def stuck_payments(args):
    """Payments still ``processing`` longer after they were confirmed (or asked to capture) than the
    recovery job waits before asking the gateway itself (``PAYMENTS_RECOVERY_AFTER_SECONDS``)."""
    return back_office.stuck_payments(unit_of_work(), current_principal(), service_context().payments, **args)


@blp.route("/disputes", methods=["GET"])
@require_scopes(SCOPE)
@blp.arguments(BackOfficeDisputeArgsSchema, location="query")
@blp.response(200, BackOfficeDisputePageSchema)
def disputes(args):
    """Disputes of every marketplace, open ones by default, oldest first."""
    return back_office.disputes(unit_of_work(), current_principal(), **args)


@blp.route("/webhook-failures", methods=["GET"])
@require_scopes(SCOPE)
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, WebhookFailuresPageSchema)
def webhook_failures(args):
    """Per marketplace (in id order; the cursor is a marketplace id), webhook deliveries that failed:
    given up on, or retrying after failed attempts. Marketplaces with none are left out."""
    return back_office.webhook_failures(unit_of_work(), current_principal(), **args)


@blp.route("/payment-stats", methods=["GET"])
@require_scopes(SCOPE)
@blp.arguments(PaymentStatsArgsSchema, location="query")
@blp.response(200, PaymentStatsSchema)
def payment_stats(args):
    """The payments created in a period, per method: how many, how many succeeded and failed, the
    success rate, and the volume the succeeded ones captured."""
    return back_office.payment_stats(unit_of_work(), current_principal(), **args)
