"""The bank-partner adapter for payouts: sending transfers and reading the bank's signed callbacks.

The service layer sees only ``BankPartner`` and the dataclasses below. ``HttpBankPartner`` speaks to
the bank-partner API (the sandbox in development); adapters are looked up by partner slug in
``BankPartnerRegistry``. Accounts keeps its own copy rather than importing onboarding's adapter:
services share no code beyond ``shared``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

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
class TransferRequest:
    reference: str  # our payout id: the bank echoes it and deduplicates on it
    rib: str
    holder_name: str
    amount: int  # minor units
    currency: str
    callback_url: str

    def __repr__(self) -> str:
        # The full account number must not reach a log line or a traceback.
        return f"TransferRequest(reference={self.reference!r}, rib='…{self.rib[-4:]}', amount={self.amount})"


@dataclasses.dataclass(frozen=True)
class Transfer:
    partner_reference: str  # the bank's transfer id
    reference: str
    status: str  # pending | paid | failed
    amount: int
    currency: str
    failure_code: str | None = None


@dataclasses.dataclass(frozen=True)
class TransferCallback:
    event_id: str
    type: str
    transfer: Transfer


# The shared partner errors, under the names this adapter's callers use.
BankPartnerError = PartnerError


class BankPartner(Protocol):
    def request_transfer(self, request: TransferRequest) -> Transfer: ...

    def transfer(self, partner_reference: str) -> Transfer: ...

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> TransferCallback: ...


def transfer_from(payload: Mapping[str, Any]) -> Transfer:
    """Read a transfer as the bank shows it (the API answer, or a callback's ``data``)."""
    amount = payload["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError("amount must be an integer number of minor units")
    failure_code = payload.get("failure_code")
    return Transfer(
        partner_reference=str(payload.get("transfer_id") or payload["id"]),
        reference=str(payload["reference"]),
        status=str(payload["status"]),
        amount=amount,
        currency=str(payload["currency"]),
        failure_code=None if failure_code is None else str(failure_code),
    )


class HttpBankPartner:
    """The bank-partner HTTP API. Every call has a timeout; only idempotent calls are retried.

    ``POST /v1/transfers`` is idempotent because the bank deduplicates on our reference (the payout
    id), so a retry after a timeout cannot send the money twice; ``GET`` is idempotent by nature.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        callback_secret: str,
        timeout: float,
        tolerance_seconds: int = 300,
        retries: int = 1,
        retry_backoff_seconds: float = 0.2,
        session: requests.Session | None = None,
    ) -> None:
        self._client = PartnerHttpClient(
            base_url,
            api_key=api_key,
            timeout=timeout,
            retries=retries,
            retry_backoff_seconds=retry_backoff_seconds,
            session=session,
            name="bank partner",
        )
        self._callback_secret = callback_secret
        self.tolerance_seconds = tolerance_seconds

    def request_transfer(self, request: TransferRequest) -> Transfer:
        payload = self._client.call("POST", "/v1/transfers", dataclasses.asdict(request), idempotent=True)
        return _parsed(payload)

    def transfer(self, partner_reference: str) -> Transfer:
        return _parsed(self._client.call("GET", f"/v1/transfers/{partner_reference}", idempotent=True))

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> TransferCallback:
        body = read_signed_callback(
            self._callback_secret,
            headers.get(SIGNATURE_HEADER),
            raw_body,
            tolerance_seconds=self.tolerance_seconds,
        )
        try:
            return TransferCallback(
                event_id=str(body["id"]), type=str(body["type"]), transfer=transfer_from(body["data"])
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidCallback("malformed") from None


def _parsed(payload: Any) -> Transfer:
    try:
        return transfer_from(payload)
    except (ValueError, KeyError, TypeError):
        raise BankPartnerError("bank partner answered with an unreadable transfer", transient=True) from None


BankPartnerRegistry = PartnerRegistry
