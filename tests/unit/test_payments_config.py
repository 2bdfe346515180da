"""Payments settings: secrets stay out of repr, and recovery never races a gateway call in flight."""

from __future__ import annotations

import pytest

from services.payments.bootstrap import make_payment_settings
from services.payments.config import PaymentsConfig
from services.payments.domain.call_budget import longest_call_seconds
from services.payments.domain.gateway import GatewayRegistry
from shared.config import ConfigError

SECRETS = dict(
    database_url="postgresql://payments:db-password-123@db/payments",
    m2t_api_key="live-m2t-api-key-456",
    m2t_callback_secret="live-m2t-callback-secret-789",
    webhook_master_keys="k1:c2VjcmV0LW1hc3Rlci1rZXk=",
)


def test_secrets_are_not_in_the_repr():
    config = PaymentsConfig(service_name="payments", **SECRETS)
    shown = repr(config) + str(config)
    for secret in SECRETS.values():
        assert secret not in shown
    assert "gateway_timeout_seconds=10.0" in shown  # the rest is still there to read


def test_the_longest_call_counts_connect_and_read_of_every_attempt_and_the_backoff():
    # 3 attempts × (10 s connect + 10 s read), then sleeps of 0.3 and 0.6 s, each up to +25 %.
    assert longest_call_seconds(
        10.0, retries=2, retry_backoff_seconds=0.3, retry_max_backoff_seconds=5.0
    ) == pytest.approx(60 + 0.375 + 0.75)
    # The backoff is capped before the jitter; a (connect, read) pair is taken as it is.
    assert longest_call_seconds(
        (1.0, 4.0), retries=3, retry_backoff_seconds=2.0, retry_max_backoff_seconds=3.0
    ) == pytest.approx(20 + 2.5 + 3.75 + 3.75)


@pytest.mark.parametrize("recovery_after", [31, 60, 61])
def test_a_recovery_that_could_poll_a_call_still_in_flight_is_refused(recovery_after):
    # The old guard (timeout × attempts = 30 s) let these through.
    with pytest.raises(ConfigError, match="RECOVERY_AFTER_SECONDS"):
        PaymentsConfig(
            service_name="payments",
            database_url="sqlite://",
            gateway_timeout_seconds=10.0,
            gateway_retries=2,
            recovery_after_seconds=recovery_after,
        ).validate()


def test_the_defaults_and_a_short_test_setup_are_accepted():
    PaymentsConfig(service_name="payments", database_url="sqlite://").validate()
    PaymentsConfig(
        service_name="payments",
        database_url="sqlite://",
        gateway_timeout_seconds=1.0,
        gateway_retries=0,
        recovery_after_seconds=3,
    ).validate()


@pytest.mark.parametrize("check_after", [0, -1, 90, 60])
def test_a_stray_charge_check_not_later_than_recovery_is_refused(check_after):
    # recovery_after_seconds is 90 by default: a second look no later than the first is no second look.
    with pytest.raises(ConfigError, match="STRAY_CHARGE_CHECK_AFTER_SECONDS"):
        PaymentsConfig(
            service_name="payments", database_url="sqlite://", stray_charge_check_after_seconds=check_after
        ).validate()


def test_the_stray_charge_check_reaches_the_service_layer():
    config = PaymentsConfig(
        service_name="payments", database_url="sqlite://", stray_charge_check_after_seconds=600
    )
    config.validate()
    settings = make_payment_settings(config, gateways=GatewayRegistry({}), default_gateway="m2t")
    assert settings.stray_charge_check_after.total_seconds() == 600
