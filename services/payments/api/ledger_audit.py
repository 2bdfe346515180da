"""For Hirfa's own checks: the succeeded payments the ledger has not confirmed posting."""

from __future__ import annotations

from flask_smorest import Blueprint

from services.payments.api.context import unit_of_work
from services.payments.api.schemas import UnpostedPaymentArgsSchema, UnpostedPaymentPageSchema
from services.payments.service_layer.ledger_audit import unposted_payments
from shared.auth.flask import require_scopes

blp = Blueprint(
    "ledger_audit",
    __name__,
    url_prefix="/v1",
    description="For another Hirfa service (scope payments:audit): payments the ledger has not confirmed.",
)


@blp.route("/unposted-payments", methods=["GET"])
@require_scopes("payments:audit")
@blp.arguments(UnpostedPaymentArgsSchema, location="query")
@blp.response(200, UnpostedPaymentPageSchema)
def unposted(args):
    """Succeeded payments whose ledger entry accounts has not announced yet.

    Accounts' completeness check compares them with its ledger; a payment that succeeded long
    ago and is listed here is one the ledger may never have been told of. Every marketplace's
    payments, oldest first; only a Hirfa service's token may read them.
    """
    return unposted_payments(
        unit_of_work(),
        succeeded_before=args["succeeded_before"],
        limit=args["limit"],
        starting_after=args["starting_after"],
    )
