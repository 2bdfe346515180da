"""The bank-partner adapter for account openings: asking a partner bank to open an account, and
reading its signed callbacks.

The service layer sees only the ``BankPartner`` port (``domain/ports.py``). ``HttpBankPartner``
speaks to the bank-partner API (the sandbox in development); adapters are looked up by partner slug
in ``PartnerRegistry``. No call is retried here: the onboarding worker resubmits openings the
bank never acknowledged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from services.onboarding.domain.ports import (
    HOLDER_MATCHES,
    AccountOpening,
    AccountOpeningRequest,
    BankCallback,
    HolderMatch,
    HolderVerificationRequest,
)
from shared.bank_partners import BankPartnerApi


def _opening_from(payload: Mapping[str, Any]) -> AccountOpening:
    return AccountOpening(
        partner_reference=str(payload.get("opening_id") or payload["id"]),
        reference=str(payload["reference"]),
        status=str(payload["status"]),
        rib=payload.get("rib"),
        refusal_reason=payload.get("refusal_reason"),
    )


def _holder_match_from(payload: Mapping[str, Any]) -> HolderMatch:
    result = payload["result"]
    if result not in HOLDER_MATCHES:
        raise ValueError("unknown holder verification result")
    return result  # type: ignore[no-any-return]


class HttpBankPartner(BankPartnerApi):
    """A partner bank's account openings and account-holder checks, over the bank-partner HTTP API."""

    def request_account_opening(self, request: AccountOpeningRequest) -> AccountOpening:
        return self._fetch(
            "POST", "/v1/account-openings", _opening_from, what="opening", body=dataclasses.asdict(request)
        )

    def account_opening(self, partner_reference: str) -> AccountOpening:
        return self._fetch("GET", f"/v1/account-openings/{partner_reference}", _opening_from, what="opening")

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> BankCallback:
        callback = self._read_callback(headers, raw_body, _opening_from)
        return BankCallback(event_id=callback.event_id, type=callback.type, opening=callback.resource)

    def verify_account_holder(self, request: HolderVerificationRequest) -> HolderMatch:
        # A read: it changes nothing at the bank, so it is safe to repeat (the client's timeout applies).
        return self._fetch(
            "POST",
            "/v1/account-holder-verifications",
            _holder_match_from,
            what="holder verification",
            body=dataclasses.asdict(request),
        )
