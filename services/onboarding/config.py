"""Onboarding settings (``ONBOARDING_*`` environment variables)."""

from __future__ import annotations

import dataclasses

from shared.config import PROJECT_ROOT, BankPartnerClientConfig, ConfigError


@dataclasses.dataclass(frozen=True)
class OnboardingConfig(BankPartnerClientConfig):
    signing_keys_dir: str = ""
    token_ttl_seconds: int = 900
    # CIN's national format is not published: the pattern is configuration and starts permissive.
    cin_pattern: str = r"^[A-Z]{1,2}[0-9]{4,8}$"
    minimum_age_years: int = 18
    # Bank Al-Maghrib payment-account caps per KYC tier, in MAD centimes (tier 0..3).
    tier_caps_centimes: str = "0,20000,500000,2000000"
    # Create the documented demo API clients at start-up (development stacks only).
    demo_clients: bool = False

    # Phone verification.
    otp_ttl_seconds: int = 300
    otp_max_attempts: int = 5
    otp_max_sends_per_hour: int = 3
    # HMAC key for stored OTP hashes (a 6-digit code is trivial to brute-force from a bare hash).
    # Development falls back to a generated key file under the keys directory.
    otp_secret: str = ""
    # "file" appends each SMS to a JSON-lines file (development, tests). An SMS provider adapter
    # plugs in behind the same interface (services/onboarding/adapters/sms.py).
    sms_backend: str = "file"
    sms_outbox_path: str = ""

    # Documents: master keys for envelope encryption. Development keeps key files under var/;
    # production passes "kid:base64key,…" in DOCUMENT_MASTER_KEYS (the last one is active).
    document_keys_dir: str = ""
    document_master_keys: str = ""
    max_document_bytes: int = 5 * 1024 * 1024

    # Sanctions/PEP screening.
    screening_threshold: float = 85.0
    screening_list_path: str = str(
        PROJECT_ROOT / "services/onboarding/screening_lists/un_consolidated_sample.xml"
    )
    # How close the bank account holder's name must be to the artisan's (0-100).
    holder_name_threshold: float = 80.0

    # Partner banks that open accounts (the bank-partner API's settings are BankPartnerClientConfig's).
    partner_banks: str = "banque_populaire,al_barid_bank,cih_bank"
    # Where the bank can reach us for callbacks (our public base URL).
    public_url: str = "http://127.0.0.1:8001"
    # Opening requests still pending after this long are polled at the bank (lost callbacks).
    bank_opening_poll_after_seconds: int = 60

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
        if self.is_production:
            if not self.otp_secret:
                raise ConfigError("OTP_SECRET must be set in production")
            if not self.document_master_keys:
                raise ConfigError("DOCUMENT_MASTER_KEYS must be set in production")


def load_config(**overrides) -> OnboardingConfig:
    return OnboardingConfig.from_env("onboarding", **overrides)
