"""Payments settings (``PAYMENTS_*`` environment variables)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import ClassVar

from services.payments.domain.call_budget import longest_call_seconds
from shared.config import (
    ConfigError,
    Process,
    ServiceConfig,
    is_loopback_url,
    process_secrets,
    public_field,
    secret_field,
)

# Development defaults shared with the M2T gateway sandbox; production must set its own.
SANDBOX_M2T_API_KEY = "sandbox-m2t-api-key"
SANDBOX_M2T_CALLBACK_SECRET = "sandbox-m2t-callback-secret"
SANDBOX_M2T_URL = "http://127.0.0.1:8010"


@dataclasses.dataclass(frozen=True)
class PaymentsConfig(ServiceConfig):
    currency: str = "MAD"
    # Smallest and largest amount of one payment, in centimes.
    min_payment_amount: int = 100
    max_payment_amount: int = 10_000_000

    # The gateway new payments go through, and the M2T API (the sandbox in development).
    default_gateway: str = "m2t"
    m2t_url: str = SANDBOX_M2T_URL
    m2t_api_key: str = secret_field(SANDBOX_M2T_API_KEY)
    m2t_callback_secret: str = secret_field(SANDBOX_M2T_CALLBACK_SECRET)
    m2t_callback_tolerance_seconds: int = 300
    # Timeout of one gateway call, and retries of calls that are safe to retry (all carry an
    # idempotency key). A payment whose call timed out goes to processing, never to failed.
    gateway_timeout_seconds: float = 10.0
    gateway_retries: int = 2
    gateway_retry_backoff_seconds: float = 0.3  # doubled per retry, up to the max
    gateway_retry_max_backoff_seconds: float = 5.0
    # The sandbox's card tokenisation endpoint is reachable through the adapter (never in production).
    gateway_allow_tokenise: bool = True
    # Where the gateway and buyers' browsers reach us (callbacks, 3-D Secure return).
    public_url: str = "http://127.0.0.1:8002"

    # The recovery job polls the gateway for payments and refunds idle this long in a waiting state.
    # It must outlast the longest gateway call (see validate): 10 s × 2 × 3 attempts + backoff is 61 s.
    recovery_after_seconds: int = 90
    # A payment recovery failed because the gateway had no record of it is looked up once more
    # this long afterwards: a charge that landed late, whose callback was lost too, is given back.
    stray_charge_check_after_seconds: int = 3600
    # A buyer who has not finished 3-D Secure this long after confirming has abandoned it: the
    # payment is voided and canceled (wallet requests expire at the gateway by themselves).
    action_expiry_seconds: int = 15 * 60
    # An authorisation not captured within this many seconds is voided and the payment canceled
    # (card schemes release uncaptured authorisations after about a week).
    authorisation_expiry_seconds: int = 7 * 24 * 3600
    # How often ``hirfa payments worker`` runs recovery and webhook deliveries (seconds).
    worker_interval_seconds: float = 2.0

    # Marketplace webhooks.
    webhook_timeout_seconds: float = 5.0
    webhook_max_age_hours: int = 72  # retries stop after three days
    # Deliveries in flight at once, one endpoint at most one at a time: the threads for healthy
    # endpoints, and the fewer ones for endpoints whose last attempt failed (dead or timing out),
    # which can only ever hold those.
    webhook_concurrency: int = 8
    webhook_troubled_concurrency: int = 2
    # Webhook endpoints on loopback, private, link-local or metadata addresses: fine for a
    # marketplace on the developer's machine, refused in production (set it to false there).
    webhook_allow_private_networks: bool = True
    # Master keys for the webhook signing secrets at rest. Development keeps key files under var/;
    # production passes "kid:base64key,…" in WEBHOOK_MASTER_KEYS (the last one is active).
    webhook_keys_dir: str = public_field("")
    webhook_master_keys: str = secret_field()

    # The API calls M2T, takes its signed callbacks and seals marketplaces' webhook secrets (and
    # signs the delivery it tries at once); the worker polls M2T and signs webhook deliveries. The
    # consumer only keeps payees up to date.
    PROCESS_SECRETS: ClassVar[Mapping[Process, frozenset[str]]] = process_secrets(
        {
            Process.API: {"m2t_api_key", "m2t_callback_secret", "webhook_master_keys"},
            Process.WORKER: {"m2t_api_key", "webhook_master_keys"},
        }
    )

    @property
    def recovery_after(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.recovery_after_seconds)

    @property
    def stray_charge_check_after(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.stray_charge_check_after_seconds)

    @property
    def action_expiry(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.action_expiry_seconds)

    @property
    def authorisation_expiry(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.authorisation_expiry_seconds)

    @property
    def webhook_keys_directory(self) -> str:
        return self.webhook_keys_dir or f"{self.var_dir}/keys/webhooks"

    @property
    def callback_url_base(self) -> str:
        return self.public_url.rstrip("/")

    def validate(self) -> None:
        super().validate()
        if not 0 < self.min_payment_amount <= self.max_payment_amount:
            raise ConfigError("MIN_PAYMENT_AMOUNT and MAX_PAYMENT_AMOUNT: 0 < min <= max")
        if self.gateway_timeout_seconds <= 0 or self.webhook_timeout_seconds <= 0:
            raise ConfigError("GATEWAY_TIMEOUT_SECONDS and WEBHOOK_TIMEOUT_SECONDS must be positive")
        if self.webhook_concurrency < 1 or self.webhook_troubled_concurrency < 1:
            raise ConfigError("WEBHOOK_CONCURRENCY and WEBHOOK_TROUBLED_CONCURRENCY must be at least 1")
        if self.gateway_retries < 0:
            raise ConfigError("GATEWAY_RETRIES must not be negative")
        if self.gateway_retry_backoff_seconds < 0 or self.gateway_retry_max_backoff_seconds < 0:
            raise ConfigError(
                "GATEWAY_RETRY_BACKOFF_SECONDS and GATEWAY_RETRY_MAX_BACKOFF_SECONDS must not be negative"
            )
        # Recovery must not poll a payment whose confirm (or capture) is still waiting on the
        # gateway: a poll that finds no record yet would fail a payment about to be charged. So it
        # waits longer than any call can last: connect and read timeouts of every attempt, and the
        # longest backoff sleeps between them, exactly as the M2T adapter runs them.
        longest_call = longest_call_seconds(
            self.gateway_timeout_seconds,
            retries=self.gateway_retries,
            retry_backoff_seconds=self.gateway_retry_backoff_seconds,
            retry_max_backoff_seconds=self.gateway_retry_max_backoff_seconds,
        )
        if self.recovery_after_seconds <= longest_call:
            raise ConfigError(
                f"RECOVERY_AFTER_SECONDS must exceed the longest gateway call with its retries and backoff "
                f"({longest_call:.1f} s)"
            )
        # The second look is for a charge that reached the gateway after recovery's look found
        # nothing: one sooner than recovery's own wait would only repeat that look.
        if not 0 < self.recovery_after_seconds < self.stray_charge_check_after_seconds:
            raise ConfigError(
                "STRAY_CHARGE_CHECK_AFTER_SECONDS must be positive and exceed RECOVERY_AFTER_SECONDS"
            )
        if self.is_production:
            self._refuse_development_stand_ins()

    def _refuse_development_stand_ins(self) -> None:
        if self.uses("m2t_callback_secret") and self.m2t_callback_secret == SANDBOX_M2T_CALLBACK_SECRET:
            raise self.refuse("m2t_callback_secret", "must be set in production (it is the M2T sandbox's)")
        if self.uses("m2t_api_key"):
            if self.m2t_api_key == SANDBOX_M2T_API_KEY:
                raise self.refuse("m2t_api_key", "must be set in production (it is the M2T sandbox's)")
            if self.m2t_url == SANDBOX_M2T_URL or is_loopback_url(self.m2t_url):
                raise self.refuse(
                    "m2t_url", "points at the M2T sandbox on this machine: production needs M2T's API"
                )
        if self.gateway_allow_tokenise:
            raise self.refuse("gateway_allow_tokenise", "must be off in production: no PAN reaches Hirfa")
        if self.webhook_allow_private_networks:
            raise self.refuse(
                "webhook_allow_private_networks",
                "must be off in production: webhooks never go to private or loopback addresses",
            )
        if self.uses("webhook_master_keys") and not self.webhook_master_keys:
            raise self.refuse("webhook_master_keys", "must be set in production (shared by every replica)")


def load_config(**overrides) -> PaymentsConfig:
    return PaymentsConfig.from_env("payments", **overrides)
