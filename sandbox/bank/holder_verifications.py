"""Account-holder verification: "is this account held by this person?", asked before an account is
linked, as payment institutions ask the account's bank (a confirmation of payee).

``POST /v1/account-holder-verifications`` with ``{"rib", "holder_name", "cin"}`` answers at once
``{"result": "match" | "mismatch" | "unknown"}``. Test data, tried in order (the account number is
RIB digits 7 to 22):

    RIB                                                      result
    account number ends in 0004                              unknown   (the bank cannot verify)
    account number ends in 0005                              mismatch  (held by someone else)
    an account this sandbox opened                           match when the name (order, case and
                                                             accents aside) and the CIN are the
                                                             opening's, else mismatch
    anything else                                            match

A body that is not a verification request (a RIB that is not 24 digits, or whose key or bank code
does not check out, say) is refused with 422.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request

from sandbox.bank.account_openings import EXTENSION_KEY as OPENINGS_KEY
from sandbox.bank.account_openings import AccountOpenings
from sandbox.common.errors import ApiError
from shared.banking import BankAccountNumber, BankIdentifierError, parse_rib

blueprint = Blueprint("holder_verifications", __name__)

UNKNOWN_SUFFIX = "0004"
MISMATCH_SUFFIX = "0005"

_RIB = re.compile(r"[0-9]{24}")
_MAX_LENGTHS = {"rib": 24, "holder_name": 140, "cin": 10}


def _name_key(name: str) -> tuple[str, ...]:
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return tuple(sorted(re.findall(r"\w+", plain)))


def _cin_key(cin: str) -> str:
    return re.sub(r"\s+", "", cin).upper()


def verify(account: BankAccountNumber, holder_name: str, cin: str, openings: AccountOpenings) -> str:
    """The sandbox bank's answer for one question (the table in the module docstring)."""
    if account.account_number.endswith(UNKNOWN_SUFFIX):
        return "unknown"
    if account.account_number.endswith(MISMATCH_SUFFIX):
        return "mismatch"
    opened = openings.holder_of(account.rib)
    if opened is not None:
        same_name = _name_key(opened.holder_name) == _name_key(holder_name)
        return "match" if same_name and _cin_key(opened.cin) == _cin_key(cin) else "mismatch"
    return "match"


def _field(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if value is None:
        raise ApiError(422, "missing_field", f"{name} is required.", param=name)
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > _MAX_LENGTHS[name]:
        message = f"{name} must be a non-empty string of at most {_MAX_LENGTHS[name]} characters."
        raise ApiError(422, "invalid_field", message, param=name)
    return value.strip()


@blueprint.post("/v1/account-holder-verifications")
def verify_account_holder():
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_body", "The body must be a JSON object.")
    rib, holder_name, cin = (_field(payload, name) for name in ("rib", "holder_name", "cin"))
    if not _RIB.fullmatch(rib):
        raise ApiError(422, "invalid_field", "rib must be 24 digits.", param="rib")
    try:
        account = parse_rib(rib)
    except BankIdentifierError as error:
        raise ApiError(422, "invalid_field", str(error), param="rib") from None
    result = verify(account, holder_name, cin, current_app.extensions[OPENINGS_KEY])
    return jsonify(result=result)


def register(app: Flask) -> None:
    app.register_blueprint(blueprint)
