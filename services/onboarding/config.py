"""Onboarding settings (``ONBOARDING_*`` environment variables)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from shared.config import (
    BANK_PARTNER_SECRETS,
    PROJECT_ROOT,
    SANDBOX_SMS_API_KEY,
    SANDBOX_SMS_CALLBACK_SECRET,
    BankPartnerClientConfig,
    ConfigError,
    Process,
    process_secrets,
    public_field,
    secret_field,
)

# The fictional lists shipped for tests and `make run`: never the list in force in production.
BUNDLED_LISTS_DIR = PROJECT_ROOT / "services/onboarding/screening_lists"
BUNDLED_SANCTIONS_LIST = BUNDLED_LISTS_DIR / "un_consolidated_sample.xml"

SMS_BACKENDS = ("file", "http")


def is_list_url(source: str) -> bool:
    return urlsplit(source).scheme in {"http", "https"}


def is_bundled_list(source: str) -> bool:
    if not source or is_list_url(source):
        return False
    return Path(source).resolve().is_relative_to(BUNDLED_LISTS_DIR.resolve())


@dataclasses.dataclass(frozen=True)
class OnboardingConfig(BankPartnerClientConfig):
    signing_keys_dir: str = public_field("")
    token_ttl_seconds: int = public_field(900)
    # CIN's national format is not published: the pattern is configuration and starts permissive.
    cin_pattern: str = r"^[A-Z]{1,2}[0-9]{4,8}$"
    minimum_age_years: int = 18
    # Bank Al-Maghrib payment-account caps per KYC tier, in MAD centimes (tier 0..3).
    tier_caps_centimes: str = "0,20000,500000,2000000"
    # Create the documented demo API clients at start-up (development stacks only; production refuses it).
    demo_clients: bool = False

    # Phone verification.
    otp_ttl_seconds: int = 300
    otp_max_attempts: int = 5
    otp_max_sends_per_hour: int = 3
    # HMAC key for stored OTP hashes (a 6-digit code is trivial to brute-force from a bare hash).
    # Development falls back to a generated key file under the keys directory.
    otp_secret: str = secret_field()
    # "file" appends each SMS to a JSON-lines file (development, tests; refused in production).
    # "http" posts each SMS to the provider's API at SMS_PROVIDER_URL with SMS_PROVIDER_API_KEY
    # (services/onboarding/adapters/sms.py).
    sms_backend: str = "file"
    sms_outbox_path: str = ""
    sms_provider_url: str = ""
    sms_provider_api_key: str = secret_field()
    sms_sender_id: str = "Hirfa"
    # Checks the provider's signed delivery receipts (POST /v1/sms/receipts); "old,new" during a
    # rotation. The default is the SMS-gateway sandbox's (sandbox/sms); production refuses it.
    sms_receipt_secret: str = secret_field(SANDBOX_SMS_CALLBACK_SECRET)

    # Notifications (services/onboarding/service_layer/notifications.py): a failed send is tried
    # again after notification_retry_seconds, doubling each time up to notification_max_backoff_seconds,
    # at most notification_max_attempts times in all; then the notification is failed.
    notification_max_attempts: int = 6
    notification_retry_seconds: float = 30.0
    notification_max_backoff_seconds: float = 3600.0

    # Artisans signing in by phone (POST /v1/artisan-sessions; the OTP settings above apply).
    artisan_token_ttl_seconds: int = public_field(900)
    refresh_token_ttl_days: int = public_field(30)
    # A rotated refresh token presented again this soon by its own device, while the token that
    # replaced it is still unused, is a retry after a lost answer: it rotates again instead of
    # revoking the session. 0 = every reuse revokes.
    refresh_token_retry_grace_seconds: int = public_field(30)
    # This many wrong codes for one number within the window lock its sign-in for lockout seconds.
    sign_in_max_failed_codes: int = 10
    sign_in_failure_window_seconds: int = 3600
    sign_in_lockout_seconds: int = 1800
    sign_in_max_starts_per_ip_per_hour: int = 30
    # Behind a proxy that sets X-Forwarded-For (the ingress), the caller of a sign-in (artisan or
    # staff) is its last hop; else every caller shares the proxy's address and its limit.
    trust_forwarded_for: bool = False
    # Every answer to a sign-in start takes at least this long, SMS sent or not (no timing oracle on
    # who is registered); keep it above the SMS provider's usual latency.
    sign_in_min_response_ms: int = 300

    # Staff signing in with email, password and TOTP (POST /v1/staff-sessions).
    staff_token_ttl_seconds: int = public_field(900)
    # This many failed sign-ins (wrong password or code) within the window lock the account.
    staff_max_failed_sign_ins: int = 5
    staff_failure_window_seconds: int = 900
    staff_lockout_seconds: int = 900
    # How long an enrolment token (printed by `staff create`, or given at a first sign-in) lasts.
    staff_enrolment_ttl_hours: int = 72
    # A staff refresh token unused this long lapses; keep it above the access token's lifetime plus
    # the console's inactivity timeout (which ends an idle session first).
    staff_refresh_idle_seconds: int = public_field(3600)
    # Every staff session ends this long after its sign-in, however busy.
    staff_session_max_hours: int = public_field(12)
    # Create the documented demo staff, already enrolled with published TOTP secrets, at
    # `hirfa stack init` (development stacks only; production refuses it).
    demo_staff: bool = False

    # Documents: master keys for envelope encryption. Development keeps key files under var/;
    # production passes "kid:base64key,…" in DOCUMENT_MASTER_KEYS (the last one is active).
    document_keys_dir: str = public_field("")
    document_master_keys: str = secret_field()
    max_document_bytes: int = 5 * 1024 * 1024

    # Sanctions/PEP screening. Each list comes from a path or an http(s) URL in the UN
    # consolidated-list XML layout (the real sanctions list:
    # https://scsanctions.un.org/resources/xml/en/consolidated.xml). A list older than its max age
    # (by its dateGenerated, else the file's or the response's modification time) is refused;
    # 0 = no limit (development). Production refuses the bundled fictional list, a missing PEP
    # list and an unlimited age.
    screening_threshold: float = 85.0
    sanctions_list_source: str = str(BUNDLED_SANCTIONS_LIST)
    sanctions_list_max_age_hours: int = 0
    pep_list_source: str = ""
    pep_list_max_age_hours: int = 0
    # Timeout of one read (connect, then each wait for data) when a list is fetched from a URL.
    screening_list_timeout_seconds: float = 30.0
    # How close the bank account holder's name must be to the artisan's (0-100).
    holder_name_threshold: float = 80.0

    # Partner banks that open accounts (the bank-partner API's settings are BankPartnerClientConfig's).
    partner_banks: str = "banque_populaire,al_barid_bank,cih_bank"
    # Where the bank can reach us for callbacks (our public base URL).
    public_url: str = "http://127.0.0.1:8001"
    # Opening requests still pending after this long are polled at the bank (lost callbacks).
    bank_opening_poll_after_seconds: int = 60

    # Personal data (law 09-08). An export (GET /v1/artisans/{id}/personal-data) gathers what
    # payments and accounts hold about the artisan from their APIs, each call within
    # personal_data_timeout_seconds. An erasure request restricts the artisan until the anti-money
    # laundering duty to keep their records ends, aml_retention_years after the relationship ended.
    payments_url: str = "http://127.0.0.1:8002"
    accounts_url: str = "http://127.0.0.1:8003"
    personal_data_timeout_seconds: float = 10.0
    aml_retention_years: int = 10

    # Besides the bank's: the API hashes one-time codes, seals documents and staff TOTP secrets,
    # sends codes by SMS and takes the provider's receipts; the worker sends notifications by SMS.
    # The consumer only queues notifications (the worker sends them).
    PROCESS_SECRETS: ClassVar[Mapping[Process, frozenset[str]]] = process_secrets(
        BANK_PARTNER_SECRETS,
        {
            Process.API: {"otp_secret", "document_master_keys", "sms_provider_api_key", "sms_receipt_secret"},
            Process.WORKER: {"sms_provider_api_key"},
        },
    )

    @property
    def keys_dir(self) -> str:
        return self.signing_keys_dir or f"{self.var_dir}/keys/onboarding"

    @property
    def documents_keys_dir(self) -> str:
        return self.document_keys_dir or f"{self.var_dir}/keys/documents"

    @property
    def sms_outbox_file(self) -> str:
        return self.sms_outbox_path or f"{self.var_dir}/sms/outbox.jsonl"

    @property
    def tier_caps(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.tier_caps_centimes.split(","))

    @property
    def partner_bank_slugs(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.partner_banks.split(",") if part.strip())

    def validate(self) -> None:
        super().validate()
        if len(self.tier_caps) != 4 or any(cap < 0 for cap in self.tier_caps):
            raise ConfigError("TIER_CAPS_CENTIMES: four non-negative caps, for tiers 0 to 3")
        if self.sms_backend not in SMS_BACKENDS:
            raise self.refuse("sms_backend", f"must be one of {', '.join(SMS_BACKENDS)}")
        # The SMS provider's settings matter where SMS are sent.
        if self.sms_backend == "http" and self.uses("sms_provider_api_key"):
            if not is_list_url(self.sms_provider_url):
                raise self.refuse(
                    "sms_provider_url", "must be the SMS provider's http(s) URL (SMS_BACKEND=http)"
                )
            if not self.sms_provider_api_key:
                raise self.refuse("sms_provider_api_key", "must be set (SMS_BACKEND=http)")
        if self.notification_max_attempts < 1 or self.notification_retry_seconds < 0:
            raise self.refuse(
                "notification_max_attempts",
                "must be at least 1 (and NOTIFICATION_RETRY_SECONDS not negative)",
            )
        if self.sanctions_list_max_age_hours < 0 or self.pep_list_max_age_hours < 0:
            raise self.refuse(
                "sanctions_list_max_age_hours", "and PEP_LIST_MAX_AGE_HOURS must not be negative"
            )
        if self.staff_max_failed_sign_ins < 1 or self.staff_lockout_seconds < 1:
            raise self.refuse("staff_max_failed_sign_ins", "and STAFF_LOCKOUT_SECONDS must be positive")
        if (
            self.staff_refresh_idle_seconds <= self.staff_token_ttl_seconds
            or self.staff_session_max_hours < 1
        ):
            raise self.refuse(
                "staff_refresh_idle_seconds",
                "must exceed STAFF_TOKEN_TTL_SECONDS (and STAFF_SESSION_MAX_HOURS be at least 1)",
            )
        if self.personal_data_timeout_seconds <= 0:
            raise self.refuse("personal_data_timeout_seconds", "must be positive")
        if self.aml_retention_years < 0:
            raise self.refuse("aml_retention_years", "must not be negative")
        if self.screening_list_timeout_seconds <= 0:
            raise self.refuse("screening_list_timeout_seconds", "must be positive")
        if not self.partner_bank_slugs:
            raise self.refuse(
                "partner_banks", "must name at least one partner bank (the first verifies accounts)"
            )
        if self.is_production:
            self._refuse_development_stand_ins()

    def _refuse_development_stand_ins(self) -> None:
        for field_name in ("otp_secret", "document_master_keys"):
            if self.uses(field_name) and not getattr(self, field_name):
                raise self.refuse(field_name, "must be set in production")
        if self.demo_clients:
            raise self.refuse(
                "demo_clients", "must be off in production: demo clients have published secrets"
            )
        if self.demo_staff:
            raise self.refuse(
                "demo_staff",
                "must be off in production: demo staff have published passwords and TOTP secrets",
            )
        if self.uses("sms_provider_api_key"):
            if self.sms_backend == "file":
                raise self.refuse(
                    "sms_backend",
                    "is file, which writes SMS to a local file: production needs an SMS provider (http)",
                )
            if self.sms_provider_api_key == SANDBOX_SMS_API_KEY:
                raise self.refuse(
                    "sms_provider_api_key", "must be set in production (it is the SMS sandbox's)"
                )
        if self.uses("sms_receipt_secret") and self.sms_receipt_secret == SANDBOX_SMS_CALLBACK_SECRET:
            raise self.refuse("sms_receipt_secret", "must be set in production (it is the SMS sandbox's)")
        if not self.sanctions_list_source or is_bundled_list(self.sanctions_list_source):
            raise self.refuse(
                "sanctions_list_source",
                "must name the UN consolidated list (a path or URL) in production, not the bundled fictional sample",
            )
        if not self.pep_list_source or is_bundled_list(self.pep_list_source):
            raise self.refuse("pep_list_source", "must name the PEP list (a path or URL) in production")
        for field_name in ("sanctions_list_source", "pep_list_source"):
            if urlsplit(getattr(self, field_name)).scheme == "http":
                raise self.refuse(field_name, "must be fetched over https in production")
        for field_name in ("sanctions_list_max_age_hours", "pep_list_max_age_hours"):
            if getattr(self, field_name) <= 0:
                raise self.refuse(
                    field_name, "must be set in production: how old a list may be before it is refused"
                )


def load_config(**overrides) -> OnboardingConfig:
    return OnboardingConfig.from_env("onboarding", **overrides)
