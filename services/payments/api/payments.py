"""Payments, refunds and disputes for marketplaces; the gateway's callbacks and the 3-D Secure return."""

from __future__ import annotations

from flask import jsonify, redirect, request
from flask.views import MethodView
from flask_smorest import Blueprint

from services.payments import problems as codes
from services.payments.api.context import service_context, unit_of_work
from services.payments.api.schemas import (
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
from shared.idempotency import (
    idempotent,
    idempotent_in_transaction,
    idempotent_when_keyed,
    requested_key,
    requested_key_if_sent,
)
from shared.openapi import problems
from shared.problem_codes import INVALID_SIGNATURE, MALFORMED_CALLBACK, UNSUPPORTED_CURRENCY

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
    @problems(
        codes.PAYEE_UNKNOWN,
        codes.PAYEE_NOT_ELIGIBLE,
        codes.PAYEE_RESTRICTED,
        codes.TIER_LIMIT_EXCEEDED,
        codes.AMOUNT_OUT_OF_RANGE,
        codes.APPLICATION_FEE_EXCEEDS_AMOUNT,
        UNSUPPORTED_CURRENCY,
    )
    def post(self, body):
        """Create a payment for an order, to confirm with a card token or a wallet phone.

        The payment starts ``requires_confirmation``; nothing is charged until it is confirmed.
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
            creation_key=requested_key(),
        )
        # What PaymentSchema would dump, built directly (``payment_snapshot``): this is the hot path.
        return jsonify(payment_snapshot(payment)), 201, {"Location": f"/v1/payments/{payment.id}"}

    @require_scopes("payments:read")
    @payments_blp.arguments(PaymentListArgsSchema, location="query")
    @payments_blp.response(200, PaymentPageSchema)
    def get(self, args):
        """Your marketplace's payments, oldest first.

        A page of at most ``limit`` payments after ``starting_after``, filtered by status, payee or
        creation time. Other marketplaces' payments are never listed."""
        return payment_actions.list_payments(unit_of_work(), current_principal(), **args)


@payments_blp.route("/payments/<string:payment_id>")
class PaymentById(MethodView):
    @require_scopes("payments:read")
    @payments_blp.response(200, PaymentSchema)
    @problems(codes.PAYMENT_NOT_FOUND)
    def get(self, payment_id):
        """One payment.

        As it stands now: its status, its amounts (captured, refunded, net of your commission) and,
        while the buyer must act, ``next_action``. Another marketplace's payment is 404
        ``payment_not_found``, as is an id that names nothing."""
        return payment_actions.get_payment(unit_of_work(), payment_id, current_principal())


@payments_blp.route("/payments/<string:payment_id>/attempts", methods=["GET"])
@require_scopes("payments:read")
@payments_blp.response(200, AttemptListSchema)
@problems(codes.PAYMENT_NOT_FOUND)
def attempts(payment_id):
    """The payment's gateway story: every call made and every callback.

    Each attempt is recorded once and never changed: the operation, the gateway's raw status and
    code, and whether its outcome was known. This is where a refused capture or a late callback
    shows."""
    return {"data": payment_actions.list_attempts(unit_of_work(), payment_id, current_principal())}


@payments_blp.route("/payments/<string:payment_id>/confirm", methods=["POST"])
@require_scopes("payments:write")
@idempotent_when_keyed
@payments_blp.arguments(
    PaymentConfirmSchema,
    examples={
        "card": {
            "summary": "A card payment: the token, and where 3-D Secure sends the buyer back",
            "value": {
                "card_token": "tok_4wGa9kQ2xY7s",
                "return_url": "https://shop.example.ma/orders/1042/paid",
            },
        },
        "mobile_wallet": {
            "summary": "A mobile-wallet payment: the buyer's phone",
            "value": {"phone": "+212612345678"},
        },
    },
)
@payments_blp.response(200, PaymentSchema)
@problems(
    codes.PAYMENT_NOT_FOUND,
    codes.INVALID_STATE,
    codes.PAYMENT_METHOD_MISMATCH,
    codes.PAYEE_UNKNOWN,
    codes.PAYEE_NOT_ELIGIBLE,
    codes.PAYEE_RESTRICTED,
    codes.TIER_LIMIT_EXCEEDED,
)
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
        confirmation_key=requested_key_if_sent(),
    )
    return jsonify(payment_snapshot(payment))  # PaymentSchema's output, built directly


@payments_blp.route("/payments/<string:payment_id>/capture", methods=["POST"])
@require_scopes("payments:write")
@idempotent_when_keyed
@payments_blp.arguments(PaymentCaptureSchema)
@payments_blp.response(200, PaymentSchema)
@problems(
    codes.PAYMENT_NOT_FOUND,
    codes.INVALID_STATE,
    codes.AMOUNT_EXCEEDS_AUTHORISED,
    codes.CAPTURE_BELOW_APPLICATION_FEE,
    codes.CAPTURE_REFUSED,
)
def capture(body, payment_id):
    """Capture an authorised payment (manual capture), in full or in part, once.

    When the gateway refuses the capture (the authorisation expired or was voided there, say):
    409 ``capture_refused`` with the gateway's reason in ``gateway_code`` and the payment's status
    as the gateway's record now shows it in ``payment_status`` (``requires_capture`` again,
    ``canceled``…); nothing was captured. Both calls are in ``/attempts``. Captured already: 409
    ``invalid_state``, except for the capture retried with its own Idempotency-Key after it went
    through, which answers the payment: ``succeeded``, or ``processing`` while the gateway's answer
    is awaited (a crash before the call included: recovery asks the gateway and settles it). A
    refused capture retried is refused again."""
    return payment_actions.capture_payment(
        unit_of_work(),
        payment_id,
        body["amount_to_capture"],
        current_principal(),
        _settings(),
        capture_key=requested_key_if_sent(),
    )


@payments_blp.route("/payments/<string:payment_id>/cancel", methods=["POST"])
@require_scopes("payments:write")
@idempotent_when_keyed
@payments_blp.response(200, PaymentSchema)
@problems(codes.PAYMENT_NOT_FOUND, codes.INVALID_STATE, codes.CANCEL_REFUSED, codes.GATEWAY_UNAVAILABLE)
def cancel(payment_id):
    """Cancel a payment not yet confirmed, waiting on the buyer, or authorised and not captured.

    When the gateway refuses the void (the wallet buyer approved meanwhile, say): 409
    ``cancel_refused`` with ``gateway_code`` and the payment's ``payment_status`` as the gateway's
    record now shows it. A cancel retried with its own Idempotency-Key answers the payment once it
    is canceled; a payment that went another way meanwhile is a 409 as for any cancel."""
    return payment_actions.cancel_payment(
        unit_of_work(), payment_id, current_principal(), _settings(), cancel_key=requested_key_if_sent()
    )


@payments_blp.route("/payments/<string:payment_id>/three-ds-return", methods=["GET"])
@payments_blp.doc(security=[])
@payments_blp.response(303)
@payments_blp.alt_response(200, schema=PaymentSchema)
@problems(codes.PAYMENT_NOT_FOUND)
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
    @problems(
        codes.PAYMENT_NOT_FOUND,
        codes.INVALID_STATE,
        codes.CHARGE_DISPUTED,
        codes.REFUND_EXCEEDS_CAPTURED,
        codes.APPLICATION_FEE_REFUND_TOO_LARGE,
        UNSUPPORTED_CURRENCY,
    )
    def post(self, body):
        """Refund part or all of a succeeded payment.

        Never more than was captured and not refunded yet (``refund_exceeds_captured``); the refund
        starts ``pending`` and the gateway's answer makes it ``succeeded`` or ``failed``. Refused with 409 ``charge_disputed`` (``dispute_id``, ``dispute_status``) while a dispute on the
        payment is open or after it was lost: the chargeback gives the buyer the money back already."""
        refund = refunds.create_refund(
            unit_of_work(),
            refunds.CreateRefund(**body),
            current_principal(),
            _settings(),
            creation_key=requested_key(),
        )
        return refund, 201, {"Location": f"/v1/refunds/{refund.id}"}

    @require_scopes("payments:read")
    @payments_blp.arguments(RefundListArgsSchema, location="query")
    @payments_blp.response(200, RefundPageSchema)
    def get(self, args):
        """Your marketplace's refunds, oldest first.

        A page of at most ``limit`` refunds after ``starting_after``, optionally of one payment or
        in one status."""
        return refunds.list_refunds(unit_of_work(), current_principal(), **args)


@payments_blp.route("/refunds/<string:refund_id>", methods=["GET"])
@require_scopes("payments:read")
@payments_blp.response(200, RefundSchema)
@problems(codes.REFUND_NOT_FOUND)
def refund_by_id(refund_id):
    """One refund.

    Its status (``pending``, ``succeeded`` or ``failed`` with ``failure_code``), its amount and the
    share of your commission it gave back."""
    return refunds.get_refund(unit_of_work(), refund_id, current_principal())


@payments_blp.route("/disputes", methods=["GET"])
@require_scopes("payments:read")
@payments_blp.arguments(DisputeListArgsSchema, location="query")
@payments_blp.response(200, DisputePageSchema)
def dispute_list(args):
    """Disputes (chargebacks) on your marketplace's payments, oldest first.

    The gateway opens a dispute when the buyer's bank contests a payment; it is ``open``, then
    ``won`` or ``lost``. While it is open, and once lost, the payment cannot be refunded
    (``charge_disputed``): the chargeback gives the buyer their money."""
    return disputes.list_disputes(unit_of_work(), current_principal(), **args)


@payments_blp.route("/disputes/<string:dispute_id>", methods=["GET"])
@require_scopes("payments:read")
@payments_blp.response(200, DisputeSchema)
@problems(codes.DISPUTE_NOT_FOUND)
def dispute_by_id(dispute_id):
    """One dispute.

    Its status, reason, amount and the payment it contests."""
    return disputes.get_dispute(unit_of_work(), dispute_id, current_principal())


# -- the gateway -------------------------------------------------------------------------------------


@gateways_blp.route("/gateways/<string:gateway>/callbacks", methods=["POST"])
@gateways_blp.doc(security=[])
@gateways_blp.response(200, CallbackAckSchema)
@problems(codes.UNKNOWN_GATEWAY, INVALID_SIGNATURE, MALFORMED_CALLBACK)
def gateway_callback(gateway):
    """A gateway's signed notification (the gateway's signature header over the raw body).

    Verified before it is read (401 ``invalid_signature``, nothing changed); idempotent on the
    gateway's event id; a late or stale snapshot never moves a payment backwards. A genuine one of
    an event type or status not mapped yet is acknowledged (``applied: false``), logged and recorded
    in the payment's attempts (``unmapped``), and changes nothing."""
    return gateway_callbacks.receive_callback(
        unit_of_work(), gateway, request.headers, request.get_data(), _settings()
    )
