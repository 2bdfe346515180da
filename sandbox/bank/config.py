"""The bank sandbox's settings, read from ``BANK_SANDBOX_*`` environment variables."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from sandbox.common.callbacks import check_callback_settings
from sandbox.common.config import EnvConfig
from shared.config import SANDBOX_BANK_API_KEY, SANDBOX_BANK_CALLBACK_SECRET, secret_field


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

    ENV_PREFIX: ClassVar[str] = "BANK_SANDBOX_"

    def __post_init__(self) -> None:
        if not self.api_key:
            self.refuse("api_key", "must not be empty")
        if self.callback_delay_seconds < 0:
            self.refuse("callback_delay_seconds", "must not be negative")
        check_callback_settings(self)
