"""Marketplaces' money settings (platform fee, payout account, commission schedule) and their
commission payouts."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from services.accounts import problems as codes
from services.accounts.api.context import service_context
from services.accounts.api.schemas import (
    CommissionPayoutListArgsSchema,
    CommissionPayoutRequestSchema,
    CommissionScheduleRequestSchema,
    MarketplaceSettingsSchema,
    PayoutAccountRequestSchema,
    PayoutPageSchema,
    PayoutSchema,
    PlatformFeeRequestSchema,
)
from services.accounts.service_layer import commission_payouts, marketplace_settings
from shared.auth.flask import current_principal, require_any_scope, require_scopes
from shared.idempotency import HEADER as IDEMPOTENCY_KEY_HEADER
from shared.idempotency import idempotent
from shared.openapi import problems
from shared.problem_codes import INVALID_RIB, UNKNOWN_BANK, UNSUPPORTED_CURRENCY

blp = Blueprint(
    "marketplaces",
    __name__,
    url_prefix="/v1/marketplaces",
    description="Marketplaces' money: the platform's fee, the commission payout account and schedule, "
    "commission payouts.",
)

# A marketplace reads and sets its own (it holds these scopes); operators any marketplace's.
# Anyone else, or another marketplace, gets 404 from the service layer.
READ_SCOPES = ("balances:read", "ledger:operate")
OWNER_SCOPES = ("payments:write", "ledger:operate")


@blp.route("/<string:marketplace_id>/settings")
class Settings(MethodView):
    @require_any_scope(*READ_SCOPES)
    @blp.response(200, MarketplaceSettingsSchema)
    def get(self, marketplace_id):
        """The marketplace's money settings.

        The platform's fee, the commission payout account (masked) and schedule; defaults until
        changed: no fee, no payout account, manual. A marketplace reads its own, operators any."""
        context = service_context()
        return marketplace_settings.get_settings(
            context.uow_factory(), marketplace_id, current_principal(), context.config.ledger_currency
        )


@blp.route("/<string:marketplace_id>/platform-fee")
class PlatformFee(MethodView):
    @require_scopes("ledger:operate")
    @blp.arguments(PlatformFeeRequestSchema)
    @blp.response(200, MarketplaceSettingsSchema)
    @problems(UNSUPPORTED_CURRENCY)
    def put(self, body, marketplace_id):
        """Set the platform's fee on the marketplace's payments from now on.

        Basis points of the gross (rounded half up) plus a fixed part, taken from the marketplace's
        commission (never more than the payment's application fee) and posted to the platform's
        revenue. Operators only."""
        context = service_context()
        currency = context.config.ledger_currency
        fee = marketplace_settings.PlatformFee(
            basis_points=body["basis_points"], fixed=body["fixed"], currency=body["currency"] or currency
        )
        return marketplace_settings.set_platform_fee(
            context.uow_factory(), marketplace_id, fee, current_principal(), currency
        )


@blp.route("/<string:marketplace_id>/payout-account")
class PayoutAccount(MethodView):
    @require_any_scope(*OWNER_SCOPES)
    @blp.arguments(PayoutAccountRequestSchema)
    @blp.response(200, MarketplaceSettingsSchema)
    @problems(INVALID_RIB, UNKNOWN_BANK)
    def put(self, body, marketplace_id):
        """Register the bank account the marketplace's commission is paid to.

        By the marketplace itself or an operator. The RIB is checked exactly as artisans' RIBs
        are."""
        context = service_context()
        return marketplace_settings.set_payout_account(
            context.uow_factory(),
            marketplace_id,
            rib=body["rib"],
            holder_name=body["holder_name"],
            principal=current_principal(),
            currency=context.config.ledger_currency,
        )


@blp.route("/<string:marketplace_id>/commission-payout-schedule")
class CommissionSchedule(MethodView):
    @require_any_scope(*OWNER_SCOPES)
    @blp.arguments(CommissionScheduleRequestSchema)
    @blp.response(200, MarketplaceSettingsSchema)
    def put(self, body, marketplace_id):
        """Set how the marketplace's commission is paid out.

        ``manual`` (an operator asks), ``daily`` or ``weekly`` (the whole commission balance, once
        per UTC day or ISO week, by the accounts worker)."""
        context = service_context()
        return marketplace_settings.set_commission_schedule(
            context.uow_factory(),
            marketplace_id,
            body["interval"],
            current_principal(),
            context.config.ledger_currency,
        )


@blp.route("/<string:marketplace_id>/commission-payouts")
class CommissionPayouts(MethodView):
    @require_scopes("ledger:operate")
    @idempotent
    @blp.arguments(CommissionPayoutRequestSchema)
    @blp.response(201, PayoutSchema)
    @problems(UNSUPPORTED_CURRENCY, codes.NO_PAYOUT_ACCOUNT, codes.INSUFFICIENT_FUNDS)
    def post(self, body, marketplace_id):
        """Pay out the marketplace's commission to its payout account.

        All of it without an amount; through the same bank, states and callbacks as artisans'
        payouts. Operators only."""
        context = service_context()
        command = commission_payouts.RequestCommissionPayout(
            marketplace_id=marketplace_id, **body, idempotency_key=request.headers.get(IDEMPOTENCY_KEY_HEADER)
        )
        payout = commission_payouts.request_commission_payout(
            context.uow_factory(), command, current_principal(), context.payouts
        )
        return payout, 201, {"Location": f"/v1/payouts/{payout.id}"}

    @require_any_scope(*READ_SCOPES)
    @blp.arguments(CommissionPayoutListArgsSchema, location="query")
    @blp.response(200, PayoutPageSchema)
    def get(self, args, marketplace_id):
        """The marketplace's commission payouts, oldest first.

        For the marketplace itself or operators; each as a payout, with its status at the bank."""
        return commission_payouts.list_commission_payouts(
            service_context().uow_factory(), marketplace_id, current_principal(), **args
        )
