"""The bank-partner adapter: opening accounts at a partner bank and reading its signed callbacks.

The service layer sees only ``BankPartner`` and the dataclasses below. ``HttpBankPartner`` speaks
to the bank-partner API (the sandbox in development); adapters are looked up by partner slug in
``BankPartnerRegistry``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

import requests

from shared.partners import (
    InvalidCallback,
    PartnerError,
    PartnerHttpClient,
    PartnerRegistry,
    read_signed_callback,
)

SIGNATURE_HEADER = "Bank-Signature"


@dataclasses.dataclass(frozen=True)
class AccountOpeningRequest:
    reference: str  # our bank-account id: the bank echoes it and deduplicates on it
    bank: str
    holder_name: str
    cin: str
    phone: str
    callback_url: str


@dataclasses.dataclass(frozen=True)
class AccountOpening:
    partner_reference: str
    reference: str
    status: str  # pending | opened | refused
    rib: str | None = None
    refusal_reason: str | None = None


@dataclasses.dataclass(frozen=True)
class BankCallback:
    event_id: str
    type: str
    opening: AccountOpening


# The shared partner errors, under the names this adapter's callers use.
BankPartnerError = PartnerError


class BankPartner(Protocol):
    def request_account_opening(self, request: AccountOpeningRequest) -> AccountOpening: ...

    def account_opening(self, partner_reference: str) -> AccountOpening: ...

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> BankCallback: ...


def _opening_from(payload: Mapping) -> AccountOpening:
    return AccountOpening(
        partner_reference=str(payload.get("opening_id") or payload["id"]),
        reference=str(payload["reference"]),
        status=str(payload["status"]),
        rib=payload.get("rib"),
        refusal_reason=payload.get("refusal_reason"),
    )


class HttpBankPartner:
    """The bank-partner HTTP API for account openings. Every call has a timeout; none is retried
    here (the onboarding worker resubmits openings the bank never acknowledged)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        callback_secret: str,
        timeout: float,
        tolerance_seconds: int = 300,
        session: requests.Session | None = None,
    ) -> None:
        self._client = PartnerHttpClient(
            base_url, api_key=api_key, timeout=timeout, session=session, name="bank partner"
        )
        self._callback_secret = callback_secret
        self.tolerance_seconds = tolerance_seconds

    def request_account_opening(self, request: AccountOpeningRequest) -> AccountOpening:
        payload = self._client.call(
            "POST", "/v1/account-openings", dataclasses.asdict(request), idempotent=True
        )
        return _parsed(payload)

    def account_opening(self, partner_reference: str) -> AccountOpening:
        return _parsed(self._client.call("GET", f"/v1/account-openings/{partner_reference}", idempotent=True))

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> BankCallback:
        body = read_signed_callback(
            self._callback_secret,
            headers.get(SIGNATURE_HEADER),
            raw_body,
            tolerance_seconds=self.tolerance_seconds,
        )
        try:
            return BankCallback(
                event_id=str(body["id"]), type=str(body["type"]), opening=_opening_from(body["data"])
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidCallback("malformed") from None


def _parsed(payload) -> AccountOpening:
    try:
        return _opening_from(payload)
    except (ValueError, KeyError, TypeError):
        raise BankPartnerError("bank partner answered with an unreadable opening", transient=True) from None


BankPartnerRegistry = PartnerRegistry
