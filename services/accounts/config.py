"""Accounts settings (``ACCOUNTS_*`` environment variables)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from shared.config import ServiceConfig


@dataclasses.dataclass(frozen=True)
class AccountsConfig(ServiceConfig):
    ledger_currency: str = "MAD"
    # How long a payment's proceeds stay pending before they become available (seconds).
    pending_hold_seconds: int = 3 * 24 * 3600
    # How often ``hirfa accounts worker`` looks for holds to release (seconds).
    worker_interval_seconds: float = 10.0

    @property
    def pending_hold(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.pending_hold_seconds)


def load_config(**overrides) -> AccountsConfig:
    return AccountsConfig.from_env("accounts", **overrides)
