"""The M2T JSON API (``/v1``, API key): tokens, transactions, refunds, disputes, settlement files.

Every POST goes through ``idempotency.idempotent``. Answers are the objects themselves (no
envelope), lists are ``{"data": [...]}``; creations answer 201, other POSTs 200.

    POST /v1/tokens                                    card -> token (sandbox only)
    POST /v1/transactions                              authorise (and capture) a card, or request a
                                                       wallet payment
    GET  /v1/transactions/<id>
    GET  /v1/transactions?reference=<merchant ref>     {"data": [transaction]} or {"data": []}
    POST /v1/transactions/<id>/3ds/complete            finish after the 3-D Secure challenge
    POST /v1/transactions/<id>/capture   {amount?}     once; partial allowed; default the whole amount
    POST /v1/transactions/<id>/void
    POST /v1/transactions/<id>/refunds   {reference, amount}
    GET  /v1/refunds/<id>,  GET /v1/refunds?reference=<merchant ref>
    GET  /v1/disputes/<id>
    POST /v1/sandbox/transactions/<id>/disputes  {amount?, reason?}   open a dispute (control)
    POST /v1/sandbox/disputes/<id>/close         {outcome}            close it won|lost (control)
    GET  /v1/settlements/<YYYY-MM-DD>.csv            the day's settlement file (settlement.py)
    POST /v1/test-helpers/settlement-lines  {date, amount, currency?, card_scheme?, reference?}
                                                       a capture line for a transaction Hirfa
                                                       never made, in that day's file (test data)

Errors besides the validation ones (``bodies``): 404 ``not_found``; 409 ``duplicate_reference`` (a
transaction or refund reference already used), ``authentication_pending``, ``already_captured``,
``invalid_status``, ``refund_exceeds_captured``, ``already_disputed``; 422 ``invalid_card_token``,
``amount_too_large`` (capture or dispute above the amount); 500 ``processing_error``.
"""

from __future__ import annotations

import dataclasses
import datetime

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from sandbox.common.errors import ApiError
from sandbox.common.idempotency import idempotent
from sandbox.m2t import bodies, cards, settlement
from sandbox.m2t.config import SandboxM2TConfig
from sandbox.m2t.gateway import current_gateway

CONFIG_EXTENSION_KEY = "m2t_sandbox.config"
ANSWER_DELAY_KEY = "m2t_answer_delay_seconds"

blueprint = Blueprint("m2t_api", __name__)

_CARD_FIELDS = ("card_number", "exp_month", "exp_year", "cvc")


def _config() -> SandboxM2TConfig:
    return current_app.extensions[CONFIG_EXTENSION_KEY]


def _body():
    return request.get_json(silent=True)


def _reference_query() -> str:
    reference = request.args.get("reference", "").strip()
    if not reference:
        raise ApiError(
            422, "missing_field", "Give the reference to look up: ?reference=...", param="reference"
        )
    return reference


@blueprint.post("/v1/tokens")
@idempotent
def create_token():
    body = bodies.json_object(_body())
    for name in _CARD_FIELDS:
        if body.get(name) is None:
            raise ApiError(422, "missing_field", f"{name} is required.", param=name)
    try:
        token = cards.tokenise(*(body[name] for name in _CARD_FIELDS))
    except cards.CardRefused as refused:
        raise ApiError(422, refused.code, refused.message, param=refused.param) from None
    current_gateway().add_token(token)
    return jsonify(token.to_json()), 201


@blueprint.post("/v1/transactions")
@idempotent
def create_transaction():
    transaction_request = bodies.parse_transaction(_body())
    public_url = _config().public_url or request.host_url
    transaction, slow = current_gateway().create_transaction(transaction_request, public_url)
    if slow:
        # Recorded (and its answer stored for replays) now; the caller waits for it all the same.
        setattr(g, ANSWER_DELAY_KEY, _config().slow_response_seconds)
    return jsonify(transaction), 201


@blueprint.get("/v1/transactions")
def find_transactions():
    return jsonify(data=current_gateway().find_transactions(_reference_query()))


@blueprint.get("/v1/transactions/<transaction_id>")
def get_transaction(transaction_id: str):
    return jsonify(current_gateway().get_transaction(transaction_id))


@blueprint.post("/v1/transactions/<transaction_id>/3ds/complete")
@idempotent
def complete_three_ds(transaction_id: str):
    return jsonify(current_gateway().complete_three_ds(transaction_id))


@blueprint.post("/v1/transactions/<transaction_id>/capture")
@idempotent
def capture(transaction_id: str):
    amount = bodies.parse_capture_amount(_body_or_none())
    return jsonify(current_gateway().capture(transaction_id, amount))


@blueprint.post("/v1/transactions/<transaction_id>/void")
@idempotent
def void(transaction_id: str):
    return jsonify(current_gateway().void(transaction_id))


@blueprint.post("/v1/transactions/<transaction_id>/refunds")
@idempotent
def create_refund(transaction_id: str):
    refund_request = bodies.parse_refund(_body())
    return jsonify(current_gateway().create_refund(transaction_id, refund_request)), 201


@blueprint.get("/v1/refunds")
def find_refunds():
    return jsonify(data=current_gateway().find_refunds(_reference_query()))


@blueprint.get("/v1/refunds/<refund_id>")
def get_refund(refund_id: str):
    return jsonify(current_gateway().get_refund(refund_id))


@blueprint.get("/v1/disputes/<dispute_id>")
def get_dispute(dispute_id: str):
    return jsonify(current_gateway().get_dispute(dispute_id))


@blueprint.post("/v1/sandbox/transactions/<transaction_id>/disputes")
@idempotent
def open_dispute(transaction_id: str):
    dispute_request = bodies.parse_dispute(_body_or_none())
    return jsonify(current_gateway().open_dispute(transaction_id, dispute_request)), 201


@blueprint.post("/v1/sandbox/disputes/<dispute_id>/close")
@idempotent
def close_dispute(dispute_id: str):
    outcome = bodies.parse_dispute_outcome(_body())
    return jsonify(current_gateway().close_dispute(dispute_id, outcome))


def _day(day: object) -> str:
    try:
        parsed = datetime.date.fromisoformat(day) if isinstance(day, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.isoformat() != day:
        raise ApiError(422, "invalid_field", "The date must be YYYY-MM-DD.", param="date")
    return parsed.isoformat()


@blueprint.get("/v1/settlements/<day>.csv")
def settlement_file(day: str):
    day = _day(day)
    rows = current_gateway().settlement_rows(day)
    return Response(
        settlement.to_csv(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="m2t-settlement-{day}.csv"'},
    )


@blueprint.post("/v1/test-helpers/settlement-lines")
@idempotent
def add_settlement_line():
    payload = bodies.json_object(_body())
    day = _day(payload.get("date"))
    amount = bodies.amount(payload)
    currency = bodies.text(payload, "currency", required=False) or "MAD"
    if currency != "MAD":
        raise ApiError(422, "unsupported_currency", "Only MAD is supported.", param="currency")
    scheme = bodies.one_of(payload, "card_scheme", ("visa", "mastercard", "cmi", "wallet"), default="visa")
    reference = bodies.text(payload, "reference", required=False) or ""
    row = current_gateway().add_foreign_settlement_line(day, amount or 0, currency, scheme, reference)
    return jsonify(dataclasses.asdict(row)), 201


def _body_or_none():
    """The JSON body, or None when there is none at all (a body is optional here)."""
    if not request.get_data():
        return None
    payload = _body()
    # A body that is not JSON stays something other than None and a dict: it is refused, not ignored.
    return request.get_data() if payload is None else payload


def register(app: Flask, config: SandboxM2TConfig) -> None:
    app.extensions[CONFIG_EXTENSION_KEY] = config
    app.register_blueprint(blueprint)
