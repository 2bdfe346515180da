"""The bank-partner adapter: opening accounts at a partner bank and reading its signed callbacks.

The service layer sees only ``BankPartner`` and the dataclasses below. ``HttpBankPartner`` speaks
to the bank-partner API (the sandbox in development); adapters are looked up by partner slug in
``BankPartnerRegistry``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Protocol

import requests

from shared.signatures import SignatureError, verify

log = logging.getLogger(__name__)

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


class BankPartnerError(RuntimeError):
    """The bank could not be reached or answered with an error. ``transient`` ones may be retried."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class InvalidCallback(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._callback_secret = callback_secret
        self.timeout = timeout
        self.tolerance_seconds = tolerance_seconds
        self._http = session or requests.Session()

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = self._http.request(
                method,
                f"{self.base_url}{path}",
                json=body,
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise BankPartnerError(f"bank partner unreachable: {type(exc).__name__}", transient=True) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise BankPartnerError(f"bank partner answered {response.status_code}", transient=True)
        if response.status_code >= 400:
            raise BankPartnerError(f"bank partner refused the request ({response.status_code})", transient=False)
        try:
            return response.json()
        except ValueError:
            raise BankPartnerError("bank partner answered with invalid JSON", transient=True) from None

    def request_account_opening(self, request: AccountOpeningRequest) -> AccountOpening:
        payload = self._call("POST", "/v1/account-openings", dataclasses.asdict(request))
        return _opening_from(payload)

    def account_opening(self, partner_reference: str) -> AccountOpening:
        return _opening_from(self._call("GET", f"/v1/account-openings/{partner_reference}"))

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> BankCallback:
        try:
            verify(
                self._callback_secret,
                headers.get(SIGNATURE_HEADER),
                raw_body,
                tolerance_seconds=self.tolerance_seconds,
            )
        except SignatureError as exc:
            raise InvalidCallback(exc.reason) from None
        try:
            body = json.loads(raw_body)
            return BankCallback(event_id=str(body["id"]), type=str(body["type"]), opening=_opening_from(body["data"]))
        except (ValueError, KeyError, TypeError):
            raise InvalidCallback("malformed") from None


class BankPartnerRegistry:
    """Adapters by partner-bank slug (``banque_populaire``, ``al_barid_bank``, ``cih_bank``)."""

    def __init__(self, adapters: Mapping[str, BankPartner]) -> None:
        self._adapters = dict(adapters)

    def get(self, slug: str) -> BankPartner:
        return self._adapters[slug]

    def __contains__(self, slug: object) -> bool:
        return slug in self._adapters

    def slugs(self) -> list[str]:
        return sorted(self._adapters)
