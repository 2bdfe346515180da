"""The SMS-gateway sandbox's settings, read from ``SMS_SANDBOX_*`` environment variables."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from sandbox.common.callbacks import check_callback_settings
from sandbox.common.config import EnvConfig
from shared.config import SANDBOX_SMS_API_KEY, SANDBOX_SMS_CALLBACK_SECRET, secret_field


@dataclasses.dataclass(frozen=True)
class SandboxSmsConfig(EnvConfig):
    api_key: str = secret_field(SANDBOX_SMS_API_KEY)
    # Signs the delivery receipts (``Sms-Signature``); the receiver checks them with the same secret.
    callback_secret: str = secret_field(SANDBOX_SMS_CALLBACK_SECRET)
    # Where receipts go when a message names no ``callback_url`` ("" = no receipts).
    default_callback_url: str = ""
    # A receipt comes this long after the message; the "late" test numbers wait late_receipt_seconds.
    receipt_delay_seconds: float = 0.5
    late_receipt_seconds: float = 5.0
    # Real gateways sometimes deliver a receipt twice; on by default so receivers are tested for it.
    duplicate_callbacks: bool = True
    callback_timeout_seconds: float = 5.0
    callback_retries: int = 5
    callback_backoff_seconds: float = 0.5
    callback_max_backoff_seconds: float = 30.0

    ENV_PREFIX: ClassVar[str] = "SMS_SANDBOX_"

    def __post_init__(self) -> None:
        if not self.api_key:
            self.refuse("api_key", "must not be empty")
        if self.receipt_delay_seconds < 0 or self.late_receipt_seconds < 0:
            self.refuse("*receipt_*seconds", "must not be negative")
        check_callback_settings(self)
