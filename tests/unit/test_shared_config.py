"""Settings every bank-partner client shares (onboarding and accounts): secrets stay out of reprs,
and production refuses the sandbox's callback secret."""

from __future__ import annotations

import pytest

from services.accounts.config import AccountsConfig
from services.onboarding.config import OnboardingConfig
from shared.config import SANDBOX_BANK_CALLBACK_SECRET, ConfigError

SERVICES = [("onboarding", OnboardingConfig), ("accounts", AccountsConfig)]


@pytest.mark.parametrize(("name", "config_type"), SERVICES)
def test_bank_partner_secrets_never_show_in_the_config_repr(name, config_type):
    config = config_type.from_env(
        name,
        environ={},
        database_url="sqlite://",
        bank_partner_api_key="key-that-must-not-leak",
        bank_callback_secret="secret-that-must-not-leak",
    )

    shown = repr(config)

    assert "key-that-must-not-leak" not in shown
    assert "secret-that-must-not-leak" not in shown
    assert "bank_partner_url=" in shown


@pytest.mark.parametrize(("name", "config_type"), SERVICES)
def test_production_refuses_the_sandbox_bank_callback_secret(name, config_type):
    with pytest.raises(ConfigError, match="BANK_CALLBACK_SECRET"):
        config_type(
            service_name=name,
            environment="production",
            database_url="postgresql://db/hirfa",
            bank_callback_secret=SANDBOX_BANK_CALLBACK_SECRET,
            # A single-broker plaintext Kafka, allowed explicitly, so the bank secret is what is refused.
            kafka_allow_plaintext=True,
            kafka_allow_single_replica=True,
            # Onboarding's other production secrets, so the bank secret is what is refused.
            **(
                {"otp_secret": "x" * 32, "document_master_keys": "k1:" + "A" * 44}
                if name == "onboarding"
                else {}
            ),
        ).validate()


@pytest.mark.parametrize("banks", ["", " , "])
def test_onboarding_needs_a_partner_bank(banks):
    # The first partner bank verifies account holders: without one, every verification is a 500.
    with pytest.raises(ConfigError, match="PARTNER_BANKS"):
        OnboardingConfig.from_env("onboarding", environ={}, database_url="sqlite://", partner_banks=banks)
