"""Onboarding settings (``ONBOARDING_*`` environment variables)."""

from __future__ import annotations

import dataclasses

from shared.config import ServiceConfig


@dataclasses.dataclass(frozen=True)
class OnboardingConfig(ServiceConfig):
    signing_keys_dir: str = ""
    token_ttl_seconds: int = 900
    # CIN's national format is not published: the pattern is configuration and starts permissive.
    cin_pattern: str = r"^[A-Z]{1,2}[0-9]{4,8}$"
    minimum_age_years: int = 18
    # Bank Al-Maghrib payment-account caps per KYC tier, in MAD centimes (tier 0..3).
    tier_caps_centimes: str = "0,20000,500000,2000000"
    # Create the documented demo API clients at start-up (development stacks only).
    demo_clients: bool = False

    @property
    def keys_dir(self) -> str:
        return self.signing_keys_dir or f"{self.var_dir}/keys/onboarding"

    @property
    def tier_caps(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.tier_caps_centimes.split(","))


def load_config(**overrides) -> OnboardingConfig:
    return OnboardingConfig.from_env("onboarding", **overrides)
