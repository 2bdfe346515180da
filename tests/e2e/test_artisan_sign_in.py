"""An artisan signs in with their phone against the running processes: the code read from the SMS
outbox, the token reads the artisan's own balance and asks for a payout (retried with the same
device key, applied once); another artisan's token gets 404 on that balance, statement, payout and
bank account, and 403 on the marketplace-only payments and webhooks endpoints."""

from __future__ import annotations

import uuid

import pytest
import requests

from shared.banking import make_rib
from tests.e2e.test_kyc_path import Client, last_sms_code, sms_received
from tests.e2e.test_ledger_path import registered_with_bank_account
from tests.e2e.test_payments_path import card_token
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def sign_in(stack, phone: str, device_id: str) -> dict:
    onboarding = stack.urls["onboarding"]
    received = len(sms_received(stack, phone))
    started = requests.post(f"{onboarding}/v1/artisan-sessions", json={"phone": phone}, timeout=10)
    assert started.status_code == 202, started.text
    # The code goes out beside the answer (a slow provider must not slow a registered number's
    # answer): wait for it to reach the phone.
    wait_until(lambda: len(sms_received(stack, phone)) > received, timeout=15, message="the sign-in code")
    verified = requests.post(
        f"{onboarding}/v1/artisan-sessions/{started.json()['id']}/verify",
        json={"code": last_sms_code(stack, phone), "device_id": device_id},
        timeout=10,
    )
    assert verified.status_code == 200, verified.text
    return verified.json()


class Artisan:
    def __init__(self, stack, tokens: dict) -> None:
        self.stack = stack
        self.headers = {"Authorization": f"Bearer {tokens['access_token']}"}

    def call(self, method: str, service: str, path: str, *, key: str | None = None, **kwargs):
        headers = dict(self.headers)
        if key:
            headers["Idempotency-Key"] = key
        return requests.request(
            method, f"{self.stack.urls[service]}{path}", headers=headers, timeout=10, **kwargs
        )


def fund(stack, marketplace: Client, artisan_id: str, amount: int) -> None:
    def payee_tier() -> int | None:
        answer = marketplace.call("GET", "payments", f"/v1/payees/{artisan_id}")
        return answer.json()["kyc_tier"] if answer.ok else None

    wait_until(lambda: payee_tier() == 1, timeout=30, message="payments knows tier 1")
    created = marketplace.call(
        "POST",
        "payments",
        "/v1/payments",
        idempotent=True,
        json={"artisan_id": artisan_id, "amount": amount, "currency": "MAD", "payment_method_type": "card"},
    )
    assert created.status_code == 201, created.text
    confirmed = marketplace.call(
        "POST",
        "payments",
        f"/v1/payments/{created.json()['id']}/confirm",
        json={"card_token": card_token(stack, "4242424242424242")},
    )
    assert confirmed.json()["status"] == "succeeded", confirmed.text


def test_an_artisan_signs_in_with_their_phone_and_reaches_their_own_money_only(stack):
    marketplace = Client(stack, "cli_demo_marketplace", "demo-marketplace-secret")
    amina = registered_with_bank_account(stack, marketplace, make_rib("001", "810", "0000000000004411"))
    other = registered_with_bank_account(stack, marketplace, make_rib("001", "810", "0000000000004422"))
    fund(stack, marketplace, amina["id"], 15_000)

    phone = Artisan(stack, sign_in(stack, amina["phone"], "e2e-amina-phone-0001"))

    def available() -> int | None:
        response = phone.call("GET", "accounts", f"/v1/artisans/{amina['id']}/balance")
        return response.json()["available"]["amount"] if response.status_code == 200 else None

    wait_until(lambda: available() == 15_000, timeout=30, message="the artisan sees the payment available")
    assert phone.call("GET", "onboarding", f"/v1/artisans/{amina['id']}").json()["id"] == amina["id"]
    assert phone.call("GET", "accounts", f"/v1/artisans/{amina['id']}/transactions").status_code == 200

    # A payout asked from the phone, sent twice with the same device key: one payout.
    key = str(uuid.uuid4())
    body = {"artisan_id": amina["id"], "amount": 5_000, "currency": "MAD"}
    payout = phone.call("POST", "accounts", "/v1/payouts", key=key, json=body)
    assert payout.status_code == 201, payout.text
    again = phone.call("POST", "accounts", "/v1/payouts", key=key, json=body)
    assert again.json()["id"] == payout.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert available() == 10_000
    assert phone.call("GET", "accounts", f"/v1/payouts/{payout.json()['id']}").status_code == 200

    # Another artisan's phone sees none of it.
    intruder = Artisan(stack, sign_in(stack, other["phone"], "e2e-other-phone-0002"))
    for service, path in (
        ("accounts", f"/v1/artisans/{amina['id']}/balance"),
        ("accounts", f"/v1/artisans/{amina['id']}/transactions"),
        ("accounts", f"/v1/payouts/{payout.json()['id']}"),
        ("onboarding", f"/v1/artisans/{amina['id']}/bank-accounts/{amina['bank_account_id']}"),
        ("onboarding", f"/v1/artisans/{amina['id']}"),
    ):
        response = intruder.call("GET", service, path)
        assert response.status_code == 404, (path, response.text)
    assert intruder.call("GET", "accounts", f"/v1/artisans/{other['id']}/balance").status_code == 200
    refused = intruder.call(
        "POST",
        "payments",
        "/v1/payments",
        key=str(uuid.uuid4()),
        json={"artisan_id": other["id"], "amount": 1_000, "currency": "MAD", "payment_method_type": "card"},
    )
    assert refused.status_code == 403, refused.text
    assert intruder.call("GET", "payments", "/v1/webhook-endpoints").status_code == 403
