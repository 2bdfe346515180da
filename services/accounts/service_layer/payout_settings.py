"""How payouts are made: the bank partners, which of them executes transfers, and from where."""

from __future__ import annotations

import dataclasses
import datetime as dt

from services.accounts.domain.ports import BankPartners


@dataclasses.dataclass(frozen=True)
class PayoutSettings:
    partners: BankPartners
    partner_bank: str  # the slug of the partner executing transfers
    source_bank_code: str  # the client-funds bank payouts leave from
    currency: str
    callback_base_url: str
    poll_after: dt.timedelta
    # How long an Idempotency-Key stands for its payout: the API's keys live as long (then a
    # client may use the key again, for a new payout).
    idempotency_key_ttl: dt.timedelta = dt.timedelta(hours=24)
    # …and an artisan device's keys (payouts queued on a phone offline, sent days later).
    artisan_idempotency_key_ttl: dt.timedelta = dt.timedelta(days=7)

    @property
    def callback_url(self) -> str:
        return f"{self.callback_base_url.rstrip('/')}/v1/banks/{self.partner_bank}/callbacks"
