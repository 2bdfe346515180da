"""The M2T sandbox's settings, read from ``M2T_SANDBOX_*`` environment variables.

``M2T_SANDBOX_API_KEY`` and ``M2T_SANDBOX_CALLBACK_SECRET`` are the two secrets the adapter shares
with the sandbox. The delays make the acquirer's timing (callbacks, the buyer approving in a wallet,
a wallet request expiring, a slow answer) short enough for tests and long enough for demos.
``M2T_SANDBOX_PUBLIC_URL`` is the sandbox's address as the buyer's browser reaches it (it prefixes
the 3-D Secure ``redirect_url``); empty means the address the API caller used.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar
from urllib.parse import urlsplit

from sandbox.common.callbacks import check_callback_settings
from sandbox.common.config import EnvConfig
from sandbox.m2t.settlement import FeeSchedule
from shared.config import secret_field


@dataclasses.dataclass(frozen=True)
class SandboxM2TConfig(EnvConfig):
    api_key: str = secret_field("sandbox-m2t-api-key")
    callback_secret: str = secret_field("sandbox-m2t-callback-secret")
    # How long M2T "thinks" before a callback (and before a refund is decided).
    callback_delay_seconds: float = 1.0
    # How long the buyer takes to answer a wallet request-to-pay.
    wallet_approval_delay_seconds: float = 3.0
    # A wallet request not answered within this many seconds of its creation expires.
    wallet_expiry_seconds: int = 120
    # How long the timeout test card keeps the caller waiting for the answer.
    slow_response_seconds: float = 10.0
    # A real acquirer sometimes delivers a callback twice, and sometimes a stale one late; both on by
    # default so receivers are tested for them.
    duplicate_callbacks: bool = True
    out_of_order_callbacks: bool = True
    # M2T's fee on each capture: fee_percent_bp basis points (rounded half up) plus fee_fixed centimes
    # for a domestic card; the international_ ones for an international card, the wallet_ ones for a
    # wallet payment. Refunds and chargebacks carry no fee.
    fee_percent_bp: int = 150
    fee_fixed: int = 150
    international_fee_percent_bp: int = 280
    international_fee_fixed: int = 150
    wallet_fee_percent_bp: int = 100
    wallet_fee_fixed: int = 0
    public_url: str = ""
    callback_timeout_seconds: float = 5.0
    # Retries after the first attempt, on connection errors, timeouts, 408, 429 and 5xx.
    callback_retries: int = 5
    # First wait between attempts; it doubles on each retry, up to callback_max_backoff_seconds.
    callback_backoff_seconds: float = 0.5
    callback_max_backoff_seconds: float = 30.0

    ENV_PREFIX: ClassVar[str] = "M2T_SANDBOX_"

    @property
    def fee_schedule(self) -> FeeSchedule:
        return FeeSchedule(
            domestic=(self.fee_percent_bp, self.fee_fixed),
            international=(self.international_fee_percent_bp, self.international_fee_fixed),
            wallet=(self.wallet_fee_percent_bp, self.wallet_fee_fixed),
        )

    def __post_init__(self) -> None:
        if not self.api_key:
            self.refuse("api_key", "must not be empty")
        for name in ("callback_delay_seconds", "wallet_approval_delay_seconds", "slow_response_seconds"):
            if getattr(self, name) < 0:
                self.refuse(name, "must not be negative")
        if self.wallet_expiry_seconds <= 0:
            self.refuse("wallet_expiry_seconds", "must be positive")
        for prefix in ("", "international_", "wallet_"):
            if not 0 <= getattr(self, f"{prefix}fee_percent_bp") <= 10_000:
                self.refuse(f"{prefix}fee_percent_bp", "must be between 0 and 10000 (100%)")
            if getattr(self, f"{prefix}fee_fixed") < 0:
                self.refuse(f"{prefix}fee_fixed", "must not be negative")
        if self.public_url:
            url = urlsplit(self.public_url)
            if url.scheme not in {"http", "https"} or not url.hostname:
                self.refuse("public_url", "must be an absolute http(s) URL")
        check_callback_settings(self)
