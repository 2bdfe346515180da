"""Accounts settings (``ACCOUNTS_*`` environment variables)."""

from __future__ import annotations

import dataclasses

from shared.config import ServiceConfig


@dataclasses.dataclass(frozen=True)
class AccountsConfig(ServiceConfig):
    ledger_currency: str = "MAD"


def load_config(**overrides) -> AccountsConfig:
    return AccountsConfig.from_env("accounts", **overrides)
