"""Account openings: the partner bank opens (or refuses) an account for an artisan and calls back.

``POST /v1/account-openings`` answers 202 ``pending`` at once; after the configured delay the bank
decides, issues a valid RIB under its own bank code when it opens the account, and sends a signed
``account_opening.opened`` or ``account_opening.refused`` callback. ``GET /v1/account-openings/<id>``
shows the current state, for a client that lost a callback.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, jsonify, request

from sandbox.bank.book import RequestBook
from sandbox.bank.config import SandboxBankConfig
from sandbox.common.callbacks import CallbackSender
from sandbox.common.errors import ApiError
from shared.banking import PARTNER_BANK_CODES, make_rib

EXTENSION_KEY = "bank_sandbox.account_openings"

blueprint = Blueprint("account_openings", __name__)

# Same rule as Hirfa's onboarding: one or two letters then digits, compared without spaces, upper case.
_CIN = re.compile(r"[A-Z]{1,2}[0-9]{4,8}")
_MAX_LENGTHS = {
    "reference": 100,
    "bank": 64,
    "holder_name": 140,
    "cin": 10,
    "phone": 32,
    "callback_url": 2048,
}
_REQUIRED_FIELDS = ("reference", "bank", "holder_name", "cin", "phone", "callback_url")


@dataclasses.dataclass(frozen=True)
class OpeningRequest:
    reference: str
    bank: str
    holder_name: str
    cin: str
    phone: str
    callback_url: str


@dataclasses.dataclass(frozen=True)
class RefusalRule:
    description: str
    applies: Callable[[OpeningRequest], bool]
    reason: str


# How the sandbox decides. The test data picks the outcome, so tests and demos can ask for a refusal;
# everything no rule matches is opened. Rules are tried in order and the first match gives the reason.
REFUSAL_RULES: tuple[RefusalRule, ...] = (
    RefusalRule(
        description="CIN ends in 99",
        applies=lambda applicant: applicant.cin.endswith("99"),
        reason="customer_due_diligence_failed",
    ),
    RefusalRule(
        description='holder name contains "refus", in any case',
        applies=lambda applicant: "refus" in applicant.holder_name.casefold(),
        reason="duplicate_customer",
    ),
)


def refusal_reason(applicant: OpeningRequest) -> str | None:
    """The reason the bank refuses ``applicant``, or None when it opens the account."""
    for rule in REFUSAL_RULES:
        if rule.applies(applicant):
            return rule.reason
    return None


@dataclasses.dataclass
class AccountOpening:
    id: str
    request: OpeningRequest
    created: int
    status: str = "pending"
    rib: str | None = None
    refusal_reason: str | None = None
    decided: int | None = None

    def to_json(self) -> dict[str, Any]:
        # The CIN, phone and callback URL are not echoed back: the client already has them.
        body: dict[str, Any] = {
            "id": self.id,
            "reference": self.request.reference,
            "bank": self.request.bank,
            "holder_name": self.request.holder_name,
            "status": self.status,
            "created": self.created,
        }
        if self.rib is not None:
            body["rib"] = self.rib
        if self.refusal_reason is not None:
            body["refusal_reason"] = self.refusal_reason
        if self.decided is not None:
            body["decided"] = self.decided
        return body

    def callback_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "opening_id": self.id,
            "reference": self.request.reference,
            "bank": self.request.bank,
            "status": self.status,
        }
        if self.rib is not None:
            data["rib"] = self.rib
        data["holder_name"] = self.request.holder_name
        if self.refusal_reason is not None:
            data["refusal_reason"] = self.refusal_reason
        return data


class AccountOpenings(RequestBook[AccountOpening]):
    """The in-memory book of openings (see ``RequestBook``); opened accounts get fresh valid RIBs."""

    id_prefix = "aop"
    event_prefix = "account_opening"
    noun = "opening"

    def __init__(self, config: SandboxBankConfig, callbacks: CallbackSender) -> None:
        super().__init__(config, callbacks)
        self._issued_ribs: set[str] = set()

    def new_item(self, item_id: str, request: OpeningRequest, created: int) -> AccountOpening:
        return AccountOpening(id=item_id, request=request, created=created)

    def open(self, opening_request: OpeningRequest) -> tuple[AccountOpening, bool]:
        return self.create(opening_request)

    def decide(self, opening: AccountOpening) -> None:
        reason = refusal_reason(opening.request)
        if reason is None:
            opening.status = "opened"
            opening.rib = self._issue_rib(PARTNER_BANK_CODES[opening.request.bank])
        else:
            opening.status = "refused"
            opening.refusal_reason = reason
        opening.decided = int(time.time())

    def holder_of(self, rib: str) -> OpeningRequest | None:
        """The request of the opening that issued ``rib`` (its holder), if this bank issued it."""
        with self._lock:
            for opening in self._by_id.values():
                if opening.rib == rib:
                    return opening.request
        return None

    def _issue_rib(self, bank_code: str) -> str:
        # Random digits, but a key computed exactly as a bank does, so Hirfa's RIB checks accept it.
        while True:
            city_code = f"{secrets.randbelow(1000):03d}"
            account_number = f"{secrets.randbelow(10**16):016d}"
            rib = make_rib(bank_code, city_code, account_number)
            if rib not in self._issued_ribs:
                self._issued_ribs.add(rib)
                return rib


def _text_field(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if value is None:
        raise ApiError(422, "missing_field", f"{name} is required.", param=name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "invalid_field", f"{name} must be a non-empty string.", param=name)
    value = value.strip()
    if len(value) > _MAX_LENGTHS[name]:
        message = f"{name} is longer than {_MAX_LENGTHS[name]} characters."
        raise ApiError(422, "invalid_field", message, param=name)
    return value


def parse_opening_request(payload: Any) -> OpeningRequest:
    """Validate the body of ``POST /v1/account-openings``; raise a 422 ``ApiError`` on the first fault."""
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_body", "The body must be a JSON object.")
    values = {name: _text_field(payload, name) for name in _REQUIRED_FIELDS}

    if values["bank"] not in PARTNER_BANK_CODES:
        supported = ", ".join(sorted(PARTNER_BANK_CODES))
        raise ApiError(422, "unsupported_bank", f"bank must be one of: {supported}.", param="bank")

    values["cin"] = re.sub(r"\s+", "", values["cin"]).upper()
    if not _CIN.fullmatch(values["cin"]):
        raise ApiError(422, "invalid_field", "cin is not a valid CIN number.", param="cin")

    url = urlsplit(values["callback_url"])
    if url.scheme not in {"http", "https"} or not url.hostname:
        message = "callback_url must be an absolute http(s) URL."
        raise ApiError(422, "invalid_field", message, param="callback_url")

    return OpeningRequest(**values)


def _openings() -> AccountOpenings:
    return current_app.extensions[EXTENSION_KEY]


@blueprint.post("/v1/account-openings")
def create_account_opening():
    opening, created = _openings().open(parse_opening_request(request.get_json(silent=True)))
    return jsonify(opening.to_json()), 202 if created else 200


@blueprint.get("/v1/account-openings/<opening_id>")
def get_account_opening(opening_id: str):
    opening = _openings().get(opening_id)
    if opening is None:
        raise ApiError(404, "not_found", "No account opening has this id.", param="id")
    return jsonify(opening.to_json())


def register(app: Flask, config: SandboxBankConfig, callbacks: CallbackSender) -> AccountOpenings:
    openings = AccountOpenings(config, callbacks)
    app.extensions[EXTENSION_KEY] = openings
    app.register_blueprint(blueprint)
    return openings
