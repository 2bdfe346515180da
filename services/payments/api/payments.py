"""Payments, refunds and disputes for marketplaces; the gateway's callbacks and the 3-D Secure return."""

from __future__ import annotations

from flask import jsonify, redirect, request
from flask.views import MethodView
from flask_smorest import Blueprint

from services.payments.api.context import service_context, unit_of_work
from services.payments.api.schemas import (
    IDEMPOTENCY_HEADER_DOC,
    OPTIONAL_IDEMPOTENCY_HEADER_DOC,
    AttemptListSchema,
    CallbackAckSchema,
    DisputeListArgsSchema,
    DisputePageSchema,
    DisputeSchema,
    PaymentCaptureSchema,
    PaymentConfirmSchema,
    PaymentCreateSchema,
    PaymentListArgsSchema,
    PaymentPageSchema,
    PaymentSchema,
    RefundCreateSchema,
    RefundListArgsSchema,
    RefundPageSchema,
    RefundSchema,
)
from services.payments.service_layer import disputes, gateway_callbacks, payment_actions, refunds
from services.payments.service_layer.ownership import payment_not_found
from services.payments.service_layer.representations import payment_snapshot
from services.payments.service_layer.settings import PaymentSettings
from shared.auth.flask import current_principal, require_scopes
from shared.idempotency import HEADER as IDEMPOTENCY_HEADER
from shared.idempotency import idempotent, idempotent_in_transaction, idempotent_when_keyed

payments_blp = Blueprint(
    "payments", __name__, url_prefix="/v1", description="Card and mobile-wallet payments."
)
gateways_blp = Blueprint(
    "gateways", __name__, url_prefix="/v1", description="Callbacks from payment gateways."
)
blueprints = (payments_blp, gateways_blp)


def _settings() -> PaymentSettings:
    return service_context().payments


# -- payments ----------------------------------------------------------------------------------------


@payments_blp.route("/payments")
class Payments(MethodView):
    @require_scopes("payments:write")
    @idempotent_in_transaction
    # An instance, not the class: webargs would build a schema for every request.
    @payments_blp.arguments(PaymentCreateSchema())
    @payments_blp.response(201, PaymentSchema)
    @payments_blp.doc(parameters=[IDEMPOTENCY_HEADER_DOC])
    def post(self, body):
        """Create a payment for an order, to confirm with a card token or a wallet phone.

        Refused with nothing charged when the artisan is unknown to your marketplace or at KYC tier 0
        (``payee_unknown``, ``payee_not_eligible``), asked for their data to be erased
        (``payee_restricted``), or when it would take them above their tier's cap
        (``tier_limit_exceeded``)."""
        command = payment_actions.CreatePayment(**body)
        payment = payment_actions.create_payment(
            unit_of_work(),
            command,
            current_principal(),
            _settings(),
            creation_key=request.headers.get(IDEMPOTENCY_HEADER),
        )
        # What PaymentSchema would dump, built directly (``payment_snapshot``): this is the hot path.
        return jsonify(payment_snapshot(payment)), 201, {"Location": f"/v1/payments/{payment.id}"}

    @require_scopes("payments:read")
    @payments_blp.arguments(PaymentListArgsSchema, location="query")
    @payments_blp.response(200, PaymentPageSchema)
    def get(self, args):
        """Your marketplace's payments, oldest first."""
        return payment_actions.list_payments(unit_of_work(), current_principal(), **args)


@payments_blp.route("/payments/<string:payment_id>")
class PaymentById(MethodView):
    @require_scopes("payments:read")
    @payments_blp.response(200, PaymentSchema)
    def get(self, payment_id):
        """One payment."""
        return payment_actions.get_payment(unit_of_work(), payment_id, current_principal())


@payments_blp.route("/payments/<string:payment_id>/attempts", methods=["GET"])
@require_scopes("payments:read")
@payments_blp.response(200, AttemptListSchema)
def attempts(payment_id):
    """The payment's gateway story: every call made (with the gateway's raw status) and every callback."""
    return {"data": payment_actions.list_attempts(unit_of_work(), payment_id, current_principal())}


@payments_blp.route("/payments/<string:payment_id>/confirm", methods=["POST"])
@require_scopes("payments:write")
@idempotent_when_keyed
@payments_blp.doc(parameters=[OPTIONAL_IDEMPOTENCY_HEADER_DOC])
@payments_blp.arguments(PaymentConfirmSchema)
@payments_blp.response(200, PaymentSchema)
def confirm(body, payment_id):
    """Charge the buyer: a card token, or a request-to-pay to their wallet.

    Answers the payment as the gateway left it: ``succeeded``, ``requires_capture`` (manual
    capture), ``requires_action`` (follow ``next_action``), ``failed`` (see ``failure_code``), or
    ``processing`` when the gateway's answer is not known yet — it never fails a payment that may
    have been charged. A payment is confirmed once: again is 409 ``invalid_state``, except for the
    confirmation retried with its own Idempotency-Key, which answers the payment as it stands."""
    command = payment_actions.ConfirmPayment(**body)
    payment = payment_actions.confirm_payment(
        unit_of_work(),
        payment_id,
        command,
        current_principal(),
        _settings(),
        confirmation_key=(request.headers.get(IDEMPOTENCY_HEADER) or "").strip() or None,
    )
    return jsonify(payment_snapshot(payment))  # PaymentSchema's output, built directly


@payments_blp.route("/payments/<string:payment_id>/capture", methods=["POST"])
@require_scopes("payments:write")
@idempotent_when_keyed
@payments_blp.doc(parameters=[OPTIONAL_IDEMPOTENCY_HEADER_DOC])
@payments_blp.arguments(PaymentCaptureSchema)
@payments_blp.response(200, PaymentSchema)
def capture(body, payment_id):
    """Capture an authorised payment (manual capture), in full or in part, once.

    When the gateway refuses the capture (the authorisation expired or was voided there, say):
    409 ``capture_refused`` with the gateway's reason in ``gateway_code`` and the payment's status
    as the gateway's record now shows it in ``payment_status`` (``requires_capture`` again,
    ``canceled``…); nothing was captured. Both calls are in ``/attempts``."""
    return payment_actions.capture_payment(
        unit_of_work(), payment_id, body["amount_to_capture"], current_principal(), _settings()
    )


@payments_blp.route("/payments/<string:payment_id>/cancel", methods=["POST"])
@require_scopes("payments:write")
@idempotent_when_keyed
@payments_blp.doc(parameters=[OPTIONAL_IDEMPOTENCY_HEADER_DOC])
@payments_blp.response(200, PaymentSchema)
def cancel(payment_id):
    """Cancel a payment not yet confirmed, waiting on the buyer, or authorised and not captured.

    When the gateway refuses the void (the wallet buyer approved meanwhile, say): 409
    ``cancel_refused`` with ``gateway_code`` and the payment's ``payment_status`` as the gateway's
    record now shows it."""
    return payment_actions.cancel_payment(unit_of_work(), payment_id, current_principal(), _settings())


@payments_blp.route("/payments/<string:payment_id>/three-ds-return", methods=["GET"])
@payments_blp.response(303)
@payments_blp.alt_response(200, schema=PaymentSchema)
def three_ds_return(payment_id):
    """Where the buyer's browser lands after 3-D Secure. Public: it only asks the gateway what happened.

    Redirects (303) to the ``return_url`` given at confirmation, with ``payment_id`` and ``status``
    in the query; without one it answers a short status."""
    payment = payment_actions.complete_three_ds(unit_of_work(), payment_id, _settings())
    if payment is None:
        raise payment_not_found()
    if payment.return_url:
        separator = "&" if "?" in payment.return_url else "?"
        return redirect(
            f"{payment.return_url}{separator}payment_id={payment.id}&status={payment.status}", 303
        )
    return {"id": payment.id, "object": "payment", "status": payment.status}, 200


# -- refunds and disputes ----------------------------------------------------------------------------


@payments_blp.route("/refunds")
class Refunds(MethodView):
    @require_scopes("payments:write")
    @idempotent
    @payments_blp.arguments(RefundCreateSchema)
    @payments_blp.response(201, RefundSchema)
    @payments_blp.doc(parameters=[IDEMPOTENCY_HEADER_DOC])
    def post(self, body):
        """Refund part or all of a succeeded payment; never more than captured (``refund_exceeds_captured``).

        Refused with 409 ``charge_disputed`` (``dispute_id``, ``dispute_status``) while a dispute on the
        payment is open or after it was lost: the chargeback gives the buyer the money back already."""
        refund = refunds.create_refund(
            unit_of_work(),
            refunds.CreateRefund(**body),
            current_principal(),
            _settings(),
            creation_key=request.headers.get(IDEMPOTENCY_HEADER),
        )
        return refund, 201, {"Location": f"/v1/refunds/{refund.id}"}

    @require_scopes("payments:read")
    @payments_blp.arguments(RefundListArgsSchema, location="query")
    @payments_blp.response(200, RefundPageSchema)
    def get(self, args):
        """Your marketplace's refunds, oldest first."""
        return refunds.list_refunds(unit_of_work(), current_principal(), **args)


@payments_blp.route("/refunds/<string:refund_id>", methods=["GET"])
@require_scopes("payments:read")
@payments_blp.response(200, RefundSchema)
def refund_by_id(refund_id):
    """One refund."""
    return refunds.get_refund(unit_of_work(), refund_id, current_principal())


@payments_blp.route("/disputes", methods=["GET"])
@require_scopes("payments:read")
@payments_blp.arguments(DisputeListArgsSchema, location="query")
@payments_blp.response(200, DisputePageSchema)
def dispute_list(args):
    """Disputes (chargebacks) on your marketplace's payments, oldest first."""
    return disputes.list_disputes(unit_of_work(), current_principal(), **args)


@payments_blp.route("/disputes/<string:dispute_id>", methods=["GET"])
@require_scopes("payments:read")
@payments_blp.response(200, DisputeSchema)
def dispute_by_id(dispute_id):
    """One dispute."""
    return disputes.get_dispute(unit_of_work(), dispute_id, current_principal())


# -- the gateway -------------------------------------------------------------------------------------


@gateways_blp.route("/gateways/<string:gateway>/callbacks", methods=["POST"])
@gateways_blp.response(200, CallbackAckSchema)
def gateway_callback(gateway):
    """A gateway's signed notification (the gateway's signature header over the raw body).

    Verified before it is read (401 ``invalid_signature``, nothing changed); idempotent on the
    gateway's event id; a late or stale snapshot never moves a payment backwards. A genuine one of
    an event type or status not mapped yet is acknowledged (``applied: false``), logged and recorded
    in the payment's attempts (``unmapped``), and changes nothing."""
    return gateway_callbacks.receive_callback(
        unit_of_work(), gateway, request.headers, request.get_data(), _settings()
    )
