"""Payouts to artisans' bank accounts, automatic payout schedules, and the bank's transfer callbacks."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from services.accounts import problems as codes
from services.accounts.api.context import service_context
from services.accounts.api.schemas import (
    CallbackAckSchema,
    PayoutListArgsSchema,
    PayoutPageSchema,
    PayoutRequestSchema,
    PayoutSchema,
    PayoutStatsArgsSchema,
    PayoutStatsSchema,
    ScheduleRequestSchema,
    ScheduleSchema,
)
from services.accounts.service_layer import bank_transfers, payout_schedules, payouts
from shared.auth.flask import current_principal, require_any_scope, require_scopes
from shared.idempotency import HEADER as IDEMPOTENCY_KEY_HEADER
from shared.idempotency import idempotent
from shared.openapi import problems
from shared.problem_codes import INVALID_SIGNATURE, MALFORMED_CALLBACK, ROLE_NOT_ALLOWED, UNSUPPORTED_CURRENCY

blp = Blueprint("payouts", __name__, url_prefix="/v1", description="Payouts to artisans' bank accounts.")

# Artisans (``payouts:request``, their own) and operators (``payouts:write``) request payouts; bank
# partners also hold ``payouts:write`` but are refused by the service layer: they only read.
REQUEST_SCOPES = ("payouts:write", "payouts:request")
READ_SCOPES = ("payouts:write", "payouts:request", "balances:read", "self:read")


@blp.route("/payouts")
class Payouts(MethodView):
    @require_any_scope(*REQUEST_SCOPES)
    @idempotent
    @blp.arguments(PayoutRequestSchema)
    @blp.response(201, PayoutSchema)
    @problems(
        ROLE_NOT_ALLOWED,
        UNSUPPORTED_CURRENCY,
        codes.INSUFFICIENT_FUNDS,
        codes.NO_PAYOUT_ACCOUNT,
        codes.PAYOUTS_NOT_ALLOWED,
    )
    def post(self, body):
        """Pay part of the artisan's available balance to their default (or the named) bank account.

        The payout is created ``pending`` with its ledger entry, then handed to the bank
        (``in_transit``); the bank's callback makes it ``paid`` or ``failed`` (the funds come back).
        Artisans request their own payouts, operators anyone's."""
        context = service_context()
        command = payouts.RequestPayout(**body, idempotency_key=request.headers.get(IDEMPOTENCY_KEY_HEADER))
        payout = payouts.request_payout(context.uow_factory(), command, current_principal(), context.payouts)
        return payout, 201, {"Location": f"/v1/payouts/{payout.id}"}

    @require_any_scope(*READ_SCOPES)
    @blp.arguments(PayoutListArgsSchema, location="query")
    @blp.response(200, PayoutPageSchema)
    def get(self, args):
        """Payouts you can see, oldest first.

        Artisans their own, marketplaces their artisans', bank partners those paid at their bank,
        operators all; filter by artisan or status."""
        return payouts.list_payouts(service_context().uow_factory(), current_principal(), **args)


@blp.route("/payout-stats", methods=["GET"])
@require_scopes("ledger:read")
@blp.arguments(PayoutStatsArgsSchema, location="query")
@blp.response(200, PayoutStatsSchema)
@problems(ROLE_NOT_ALLOWED)
def payout_stats(args):
    """Payout figures of a period, for operators.

    How many payouts were sent to the bank, paid and failed in the period, and for how much (each
    counted by when it took that step)."""
    return payouts.payout_stats(service_context().uow_factory(), current_principal(), **args)


@blp.route("/payouts/<string:payout_id>")
class PayoutById(MethodView):
    @require_any_scope(*READ_SCOPES)
    @blp.response(200, PayoutSchema)
    def get(self, payout_id):
        """One payout.

        Its amount, destination account (masked), status (``pending``, ``in_transit``, ``paid`` or
        ``failed`` with the bank's reason) and when each step happened."""
        return payouts.get_payout(service_context().uow_factory(), payout_id, current_principal())


@blp.route("/artisans/<string:artisan_id>/payout-schedule")
class PayoutScheduleView(MethodView):
    @require_any_scope(*REQUEST_SCOPES)
    @blp.arguments(ScheduleRequestSchema)
    @blp.response(200, ScheduleSchema)
    @problems(ROLE_NOT_ALLOWED, UNSUPPORTED_CURRENCY)
    def put(self, body, artisan_id):
        """Set the artisan's automatic payouts.

        Of the whole available balance: ``manual`` (none), ``daily``, ``weekly``, or ``threshold``
        (once it reaches ``threshold``, at most daily). Windows: UTC days, ISO weeks."""
        context = service_context()
        return payout_schedules.set_schedule(
            context.uow_factory(),
            artisan_id,
            payout_schedules.SetSchedule(**body),
            current_principal(),
            context.payouts,
        )

    @require_any_scope(*READ_SCOPES)
    @blp.response(200, ScheduleSchema)
    def get(self, artisan_id):
        """The artisan's payout schedule.

        ``manual`` until one is set, with who set it and when."""
        context = service_context()
        return payout_schedules.get_schedule(
            context.uow_factory(), artisan_id, current_principal(), context.payouts
        )


@blp.route("/banks/<string:bank>/callbacks")
class BankCallbacks(MethodView):
    @blp.response(200, CallbackAckSchema)
    @blp.doc(security=[])
    @problems(INVALID_SIGNATURE, MALFORMED_CALLBACK)
    def post(self, bank):
        """A partner bank's news of a transfer (``transfer.paid``, ``transfer.failed``).

        Signed by the bank: ``Bank-Signature: t=…,v1=HMAC-SHA256(secret, t.body)``, verified against
        the raw body before it is read. Duplicates and late deliveries change nothing."""
        context = service_context()
        return bank_transfers.handle_callback(
            context.uow_factory(), bank, request.headers, request.get_data(), context.payouts
        )
