"""Transfers: the partner bank pays an amount into an artisan's account (a Hirfa payout) and calls back.

``POST /v1/transfers`` answers 202 ``pending`` at once; after the configured delay the bank settles the
transfer and sends a signed ``transfer.paid`` or ``transfer.failed`` callback (``failure_code`` says
why). ``GET /v1/transfers/<id>`` shows the current state, for a client that lost a callback. The
``reference`` (Hirfa's payout id) makes the request idempotent: the same reference with the same details
returns the same transfer; with other details it is refused (409 ``reference_conflict``).

Test data: the destination RIB picks the outcome. The rules are tried in order; the first match wins.

    destination RIB                                            outcome
    fails the RIB check (wrong key, unknown bank code)         failed  invalid_rib
    account number (RIB digits 7 to 22) ends in 0001           failed  account_closed
    account number ends in 0002                                failed  name_mismatch
    account number ends in 0003                                failed  bank_unavailable
    account number ends in 0004                                paid, then returned the same day (the
                                                               client-funds statement: a debit, then
                                                               an NRTI credit)
    account number ends in 0005                                paid, but never debited on the
                                                               client-funds statement
    anything else                                              paid (and debited on the statement)

``bank_unavailable`` is the receiving bank not answering: the transfer is accepted, then fails (the
funds go back), rather than the sandbox answering 503. A body that is not a transfer at all (a RIB that
is not 24 digits, say) is refused at once with 422, the way the bank refuses a malformed order.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, jsonify, request

from sandbox.bank.book import RequestBook
from sandbox.bank.config import SandboxBankConfig
from sandbox.common.callbacks import CallbackSender
from sandbox.common.errors import ApiError
from shared.banking import BankIdentifierError, parse_rib

EXTENSION_KEY = "bank_sandbox.transfers"
CURRENCIES = ("MAD",)

blueprint = Blueprint("transfers", __name__)

_RIB = re.compile(r"[0-9]{24}")
_MAX_LENGTHS = {"reference": 100, "holder_name": 140, "callback_url": 2048}


@dataclasses.dataclass(frozen=True)
class TransferRequest:
    reference: str
    rib: str
    holder_name: str
    amount: int
    currency: str
    callback_url: str

    @property
    def account_number(self) -> str:
        return self.rib[6:22]


def _rib_checks_out(rib: str) -> bool:
    try:
        parse_rib(rib)
    except BankIdentifierError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class FailureRule:
    description: str
    applies: Callable[[TransferRequest], bool]
    failure_code: str


# How the sandbox decides (the table in the module docstring). Everything no rule matches is paid.
FAILURE_RULES: tuple[FailureRule, ...] = (
    FailureRule(
        description="the RIB fails the RIB check (wrong key, unknown bank code)",
        applies=lambda transfer: not _rib_checks_out(transfer.rib),
        failure_code="invalid_rib",
    ),
    FailureRule(
        description="account number ends in 0001",
        applies=lambda transfer: transfer.account_number.endswith("0001"),
        failure_code="account_closed",
    ),
    FailureRule(
        description="account number ends in 0002",
        applies=lambda transfer: transfer.account_number.endswith("0002"),
        failure_code="name_mismatch",
    ),
    FailureRule(
        description="account number ends in 0003",
        applies=lambda transfer: transfer.account_number.endswith("0003"),
        failure_code="bank_unavailable",
    ),
)


def failure_code(transfer: TransferRequest) -> str | None:
    """Why the bank fails ``transfer``, or None when it pays it."""
    for rule in FAILURE_RULES:
        if rule.applies(transfer):
            return rule.failure_code
    return None


@dataclasses.dataclass
class Transfer:
    id: str
    request: TransferRequest
    created: int
    status: str = "pending"
    failure_code: str | None = None
    settled: int | None = None

    def to_json(self) -> dict[str, Any]:
        # The full RIB and the callback URL are not echoed back: the client already has them.
        body: dict[str, Any] = {
            "id": self.id,
            "reference": self.request.reference,
            "amount": self.request.amount,
            "currency": self.request.currency,
            "rib_last4": self.request.rib[-4:],
            "holder_name": self.request.holder_name,
            "status": self.status,
            "created": self.created,
        }
        if self.failure_code is not None:
            body["failure_code"] = self.failure_code
        if self.settled is not None:
            body["settled"] = self.settled
        return body

    def callback_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "transfer_id": self.id,
            "reference": self.request.reference,
            "status": self.status,
            "amount": self.request.amount,
            "currency": self.request.currency,
        }
        if self.failure_code is not None:
            data["failure_code"] = self.failure_code
        return data


class Transfers(RequestBook[Transfer]):
    """The in-memory book of transfers (see ``RequestBook``); the test RIBs decide the outcome."""

    id_prefix = "trf"
    event_prefix = "transfer"
    noun = "transfer"

    def __init__(
        self,
        config: SandboxBankConfig,
        callbacks: CallbackSender,
        on_paid: Callable[[str, str, str, int, str], None] | None = None,
    ) -> None:
        super().__init__(config, callbacks)
        # Books the payout on the client-funds account (sandbox/bank/client_funds.py).
        self._on_paid = on_paid

    def new_item(self, item_id: str, request: TransferRequest, created: int) -> Transfer:
        return Transfer(id=item_id, request=request, created=created)

    def submit(self, transfer_request: TransferRequest) -> tuple[Transfer, bool]:
        return self.create(transfer_request)

    def decide(self, transfer: Transfer) -> None:
        transfer.failure_code = failure_code(transfer.request)
        transfer.status = "paid" if transfer.failure_code is None else "failed"
        transfer.settled = int(time.time())
        if transfer.status == "paid" and self._on_paid is not None:
            request = transfer.request
            self._on_paid(
                transfer.id, request.reference, request.account_number, request.amount, request.holder_name
            )


def _text_field(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if value is None:
        raise ApiError(422, "missing_field", f"{name} is required.", param=name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "invalid_field", f"{name} must be a non-empty string.", param=name)
    value = value.strip()
    if name in _MAX_LENGTHS and len(value) > _MAX_LENGTHS[name]:
        message = f"{name} is longer than {_MAX_LENGTHS[name]} characters."
        raise ApiError(422, "invalid_field", message, param=name)
    return value


def parse_transfer_request(payload: Any) -> TransferRequest:
    """Validate the body of ``POST /v1/transfers``; raise a 422 ``ApiError`` on the first fault."""
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_body", "The body must be a JSON object.")
    reference = _text_field(payload, "reference")
    rib = _text_field(payload, "rib")
    if not _RIB.fullmatch(rib):
        raise ApiError(422, "invalid_field", "rib must be the 24 digits of a RIB.", param="rib")
    holder_name = _text_field(payload, "holder_name")
    amount = payload.get("amount")
    if amount is None:
        raise ApiError(422, "missing_field", "amount is required.", param="amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        message = "amount must be a positive integer of minor units."
        raise ApiError(422, "invalid_field", message, param="amount")
    currency = _text_field(payload, "currency")
    if currency not in CURRENCIES:
        raise ApiError(
            422,
            "unsupported_currency",
            f"currency must be one of: {', '.join(CURRENCIES)}.",
            param="currency",
        )
    callback_url = _text_field(payload, "callback_url")
    url = urlsplit(callback_url)
    if url.scheme not in {"http", "https"} or not url.hostname:
        message = "callback_url must be an absolute http(s) URL."
        raise ApiError(422, "invalid_field", message, param="callback_url")
    return TransferRequest(reference, rib, holder_name, amount, currency, callback_url)


def _transfers() -> Transfers:
    return current_app.extensions[EXTENSION_KEY]


@blueprint.post("/v1/transfers")
def create_transfer():
    transfer, created = _transfers().submit(parse_transfer_request(request.get_json(silent=True)))
    return jsonify(transfer.to_json()), 202 if created else 200


@blueprint.get("/v1/transfers/<transfer_id>")
def get_transfer(transfer_id: str):
    transfer = _transfers().get(transfer_id)
    if transfer is None:
        raise ApiError(404, "not_found", "No transfer has this id.", param="id")
    return jsonify(transfer.to_json())


def register(
    app: Flask,
    config: SandboxBankConfig,
    callbacks: CallbackSender,
    on_paid: Callable[[str, str, str, int, str], None] | None = None,
) -> Transfers:
    transfers = Transfers(config, callbacks, on_paid)
    app.extensions[EXTENSION_KEY] = transfers
    app.register_blueprint(blueprint)
    return transfers
