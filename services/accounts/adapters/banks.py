"""The bank-partner adapter for payouts: sending transfers and reading the bank's signed callbacks.

The service layer sees only ``BankPartner`` and the dataclasses below. ``HttpBankPartner`` speaks to
the bank-partner API (the sandbox in development); adapters are looked up by partner slug in
``BankPartnerRegistry``. Accounts keeps its own copy rather than importing onboarding's adapter:
services share no code beyond ``shared``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

import requests

from shared.signatures import SignatureError, verify

log = logging.getLogger(__name__)

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


class BankPartnerError(RuntimeError):
    """The bank could not be reached or answered with an error. ``transient`` ones may be retried."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class InvalidCallback(ValueError):
    """``reason`` is a ``SignatureError`` reason, or ``malformed`` for a genuine but unreadable body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._callback_secret = callback_secret
        self.timeout = timeout
        self.tolerance_seconds = tolerance_seconds
        self.retries = retries
        self.retry_backoff_seconds = retry_backoff_seconds
        self._http = session or requests.Session()

    def _call_once(self, method: str, path: str, body: dict | None) -> dict:
        try:
            response = self._http.request(
                method,
                f"{self.base_url}{path}",
                json=body,
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            message = f"bank partner unreachable: {type(exc).__name__}"
            raise BankPartnerError(message, transient=True) from None
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise BankPartnerError(f"bank partner answered {response.status_code}", transient=True)
        if response.status_code >= 400:
            code = _error_code(response)
            message = f"bank partner refused the request ({response.status_code} {code})"
            raise BankPartnerError(message, transient=False)
        try:
            return response.json()
        except ValueError:
            raise BankPartnerError("bank partner answered with invalid JSON", transient=True) from None

    def _call(self, method: str, path: str, body: dict | None = None, *, idempotent: bool) -> dict:
        attempts = 1 + (self.retries if idempotent else 0)
        attempt = 1
        while True:
            try:
                return self._call_once(method, path, body)
            except BankPartnerError as exc:
                if not exc.transient or attempt >= attempts:
                    raise
                log.info("bank partner call failed; retrying", extra={"path": path, "attempt": attempt})
                time.sleep(self.retry_backoff_seconds * 2 ** (attempt - 1))
                attempt += 1

    def request_transfer(self, request: TransferRequest) -> Transfer:
        payload = self._call("POST", "/v1/transfers", dataclasses.asdict(request), idempotent=True)
        return _parsed(payload)

    def transfer(self, partner_reference: str) -> Transfer:
        return _parsed(self._call("GET", f"/v1/transfers/{partner_reference}", idempotent=True))

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> TransferCallback:
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


def _error_code(response: requests.Response) -> str:
    """The bank's own error code (``{"code", "message"}``), for the logs."""
    try:
        return str(response.json().get("code", "?"))
    except (ValueError, AttributeError):
        return "?"


class BankPartnerRegistry:
    """Adapters by partner-bank slug (``banque_populaire``, …): the slug names the callback URL too."""

    def __init__(self, adapters: Mapping[str, BankPartner]) -> None:
        self._adapters = dict(adapters)

    def get(self, slug: str) -> BankPartner:
        return self._adapters[slug]

    def __contains__(self, slug: object) -> bool:
        return slug in self._adapters

    def slugs(self) -> list[str]:
        return sorted(self._adapters)
