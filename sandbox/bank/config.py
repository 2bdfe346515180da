"""The bank sandbox's settings, read from ``BANK_SANDBOX_*`` environment variables.

The client-funds account (``CLIENT_FUNDS_*``) is the account the bank holds for Hirfa; the acquirer
settings say where the bank reads the acquirer's settlement files (``ACQUIRER_URL`` empty: it reads
none), and ``SETTLEMENT_LAG_DAYS`` how many days after its file a settlement reaches the account.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from sandbox.common.callbacks import check_callback_settings
from sandbox.common.config import EnvConfig
from shared.banking import iban_check_digits, make_rib
from shared.config import SANDBOX_BANK_API_KEY, SANDBOX_BANK_CALLBACK_SECRET, secret_field

_CLIENT_FUNDS_RIB = make_rib("145", "780", "0000000000000145")
DEFAULT_CLIENT_FUNDS_IBAN = f"MA{iban_check_digits(_CLIENT_FUNDS_RIB)}{_CLIENT_FUNDS_RIB}"


@dataclasses.dataclass(frozen=True)
class SandboxBankConfig(EnvConfig):
    callback_secret: str = secret_field(SANDBOX_BANK_CALLBACK_SECRET)
    api_key: str = secret_field(SANDBOX_BANK_API_KEY)
    callback_delay_seconds: float = 1.0
    # Real banks sometimes deliver a callback twice; on by default so receivers are tested for it.
    duplicate_callbacks: bool = True
    callback_timeout_seconds: float = 5.0
    # Retries after the first attempt, on connection errors, timeouts, 408, 429 and 5xx.
    callback_retries: int = 5
    # First wait between attempts; it doubles on each retry, up to callback_max_backoff_seconds.
    callback_backoff_seconds: float = 0.5
    callback_max_backoff_seconds: float = 30.0
    client_funds_bank_code: str = "145"
    client_funds_iban: str = DEFAULT_CLIENT_FUNDS_IBAN
    client_funds_holder: str = "HIRFA CLIENT FUNDS"
    acquirer_url: str = ""
    acquirer_api_key: str = secret_field("sandbox-m2t-api-key")
    acquirer_timeout_seconds: float = 5.0
    settlement_lag_days: int = 1

    ENV_PREFIX: ClassVar[str] = "BANK_SANDBOX_"

    def __post_init__(self) -> None:
        if not self.api_key:
            self.refuse("api_key", "must not be empty")
        if self.callback_delay_seconds < 0:
            self.refuse("callback_delay_seconds", "must not be negative")
        if not (len(self.client_funds_bank_code) == 3 and self.client_funds_bank_code.isdigit()):
            self.refuse("client_funds_bank_code", "must be a three-digit bank code")
        if self.settlement_lag_days < 0:
            self.refuse("settlement_lag_days", "must not be negative")
        if self.acquirer_timeout_seconds <= 0:
            self.refuse("acquirer_timeout_seconds", "must be positive")
        check_callback_settings(self)
