"""The SMS backend, the webhook network rule and the demo clients come from configuration: the HTTP
SMS provider has a timeout and never shows its key, and what development allows is a setting."""

from __future__ import annotations

import pytest
import requests

from services.onboarding.adapters.sms import SMS_BACKENDS, FileSmsOutbox, HttpSmsProvider, make_sms_sender
from services.onboarding.config import SMS_BACKENDS as CONFIGURED_SMS_BACKENDS
from services.onboarding.config import OnboardingConfig
from services.onboarding.domain.ports import SmsDeliveryError
from services.payments.bootstrap import make_webhook_settings
from services.payments.config import PaymentsConfig
from services.stack import demo_client_lines


class FakeResponse:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class FakeSession:
    def __init__(self, outcome: FakeResponse | Exception) -> None:
        self.outcome = outcome
        self.calls: list[dict] = []

    def post(self, url, **kwargs):
        self.calls.append({"url": url, **kwargs})
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def provider(session: FakeSession) -> HttpSmsProvider:
    return HttpSmsProvider(
        "https://sms.example/v1/messages",
        api_key="sms-key-that-must-not-leak",
        sender_id="Hirfa",
        timeout_seconds=4.0,
        session=session,
    )


def test_the_http_provider_posts_the_message_with_its_key_and_a_timeout():
    session = FakeSession(FakeResponse(202))

    provider(session).send("+212600000001", "Votre code : 123456")

    (call,) = session.calls
    assert call["timeout"] == 4.0
    assert call["json"] == {"to": "+212600000001", "text": "Votre code : 123456", "sender": "Hirfa"}
    assert call["headers"]["Authorization"] == "Bearer sms-key-that-must-not-leak"


@pytest.mark.parametrize("outcome", [FakeResponse(500), FakeResponse(401), requests.Timeout("slow")])
def test_a_failed_send_is_a_delivery_error_without_the_key_or_the_code(outcome):
    sms = provider(FakeSession(outcome))

    with pytest.raises(SmsDeliveryError) as failed:
        sms.send("+212600000001", "Votre code : 123456")

    shown = str(failed.value) + repr(sms)
    assert "sms-key-that-must-not-leak" not in shown
    assert "123456" not in shown


def test_the_backend_is_chosen_by_its_configured_name(tmp_path):
    development = OnboardingConfig.from_env("onboarding", environ={}, var_dir=str(tmp_path))
    with_provider = OnboardingConfig.from_env(
        "onboarding",
        environ={
            "ONBOARDING_SMS_BACKEND": "http",
            "ONBOARDING_SMS_PROVIDER_URL": "https://sms.example/v1/messages",
            "ONBOARDING_SMS_PROVIDER_API_KEY": "k",
        },
    )

    assert isinstance(make_sms_sender(development), FileSmsOutbox)
    assert isinstance(make_sms_sender(with_provider), HttpSmsProvider)
    assert set(SMS_BACKENDS) == set(CONFIGURED_SMS_BACKENDS)


@pytest.mark.parametrize("allow", [True, False])
def test_webhooks_to_private_networks_follow_the_setting_in_development(allow):
    config = PaymentsConfig(
        service_name="payments",
        webhook_allow_private_networks=allow,
        webhook_master_keys="wk_1:d2ViaG9vay1tYXN0ZXIta2V5LTMyLWJ5dGVzLW9rISE=",
    )

    settings = make_webhook_settings(config)

    assert settings.allow_private_hosts is allow
    assert settings.sender.allow_private_networks is allow


def test_demo_credentials_are_printed_only_when_the_stack_creates_demo_clients(monkeypatch, tmp_path):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.setenv("ONBOARDING_DEMO_CLIENTS", "false")
    assert demo_client_lines("http://127.0.0.1:8001") == []

    monkeypatch.setenv("ONBOARDING_DEMO_CLIENTS", "true")
    shown = "\n".join(demo_client_lines("http://127.0.0.1:8001"))
    assert "cli_demo_marketplace" in shown and "demo-marketplace-secret" in shown
