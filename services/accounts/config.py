"""Accounts settings (``ACCOUNTS_*`` environment variables)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from shared.config import BankPartnerClientConfig, ConfigError


@dataclasses.dataclass(frozen=True)
class AccountsConfig(BankPartnerClientConfig):
    ledger_currency: str = "MAD"
    # How long a payment's proceeds stay pending before they become available (seconds).
    pending_hold_seconds: int = 3 * 24 * 3600
    # How often ``hirfa accounts worker`` looks for holds to release and payouts to move (seconds).
    worker_interval_seconds: float = 10.0

    # Where the bank can reach us for callbacks (our public base URL).
    public_url: str = "http://127.0.0.1:8003"
    # The partner that executes transfers (callbacks arrive at /v1/banks/<slug>/callbacks), and the
    # code of the bank holding the client funds payouts leave from (the ledger's bank:<code>).
    payout_partner_bank: str = "banque_populaire"
    payout_bank_code: str = "145"
    # Payouts the bank has not settled after this long are polled (lost callbacks).
    payout_poll_after_seconds: int = 60
    # Adjustments and reversals moving more than this (minor units) wait for a second operator's
    # approval (four-eyes); up to it they post at once.
    adjustment_approval_above: int = 100_000

    @property
    def pending_hold(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.pending_hold_seconds)

    @property
    def payout_poll_after(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.payout_poll_after_seconds)

    def validate(self) -> None:
        super().validate()
        if not re.fullmatch(r"[0-9]{3}", self.payout_bank_code):
            raise ConfigError("PAYOUT_BANK_CODE: a three-digit bank code")
        if self.payout_poll_after_seconds < 0:
            raise ConfigError("PAYOUT_POLL_AFTER_SECONDS must not be negative")
        if self.adjustment_approval_above < 0:
            raise ConfigError("ADJUSTMENT_APPROVAL_ABOVE must not be negative")


def load_config(**overrides) -> AccountsConfig:
    return AccountsConfig.from_env("accounts", **overrides)
