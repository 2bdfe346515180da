"""The bank-partner adapter for payouts: sending transfers and reading the bank's signed callbacks.

The service layer sees only the port in ``services.accounts.domain.ports``. ``HttpBankPartner`` speaks to
the bank-partner API (the sandbox in development); adapters are looked up by partner slug in
``PartnerRegistry``. The HTTP client, the callback signature and the registry are every bank
adapter's, in ``shared.bank_partners``; this module adds transfers and how to read them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from services.accounts.domain.ports import Transfer, TransferCallback, TransferRequest
from shared.bank_partners import BankPartnerApi


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


class HttpBankPartner(BankPartnerApi):
    """The bank-partner HTTP API for transfers. Only idempotent calls are retried.

    ``POST /v1/transfers`` is idempotent because the bank deduplicates on our reference (the payout
    id), so a retry after a timeout cannot send the money twice; ``GET`` is idempotent by nature.
    """

    default_retries = 1

    def request_transfer(self, request: TransferRequest) -> Transfer:
        return self._fetch(
            "POST", "/v1/transfers", transfer_from, what="transfer", body=dataclasses.asdict(request)
        )

    def transfer(self, partner_reference: str) -> Transfer:
        return self._fetch("GET", f"/v1/transfers/{partner_reference}", transfer_from, what="transfer")

    def parse_callback(self, headers: Mapping[str, str], raw_body: bytes) -> TransferCallback:
        callback = self._read_callback(headers, raw_body, transfer_from)
        return TransferCallback(event_id=callback.event_id, type=callback.type, transfer=callback.resource)
