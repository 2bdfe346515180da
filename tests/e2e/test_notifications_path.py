"""Notifications through the running processes: an artisan who reads Arabic verifies their phone with
a code read from the SMS-gateway sandbox, is paid by card, and is told by SMS, in Arabic, that their
tier went up, that a payment is pending and that the funds are available; they sign in from their
phone and are told a new device signed in; the sandbox's delivery receipts mark each notification
delivered, and the artisan reads them in their inbox with their own token."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.test_artisan_sign_in import sign_in
from tests.e2e.test_kyc_path import Client, sms_received, verify_phone
from tests.e2e.test_payments_path import card_token, confirm, create
from tests.support import artisan_body, wait_until

pytestmark = pytest.mark.e2e


def test_an_arabic_reading_artisan_is_told_by_sms_of_their_tier_and_their_money(stack):
    marketplace = Client(stack, "cli_demo_marketplace", "demo-marketplace-secret")
    artisan = marketplace.call(
        "POST", "onboarding", "/v1/artisans", idempotent=True, json=artisan_body(preferred_language="ar")
    ).json()
    verify_phone(stack, marketplace, artisan)
    wait_until(
        lambda: (
            (marketplace.call("GET", "payments", f"/v1/payees/{artisan['id']}").json() or {}).get("kyc_tier")
            == 1
        ),
        timeout=30,
        message="payments knows tier 1",
    )

    payment = create(marketplace, artisan["id"], amount=1000, application_fee=100)
    assert confirm(marketplace, payment["id"], card_token=card_token(stack, "4242424242424242"))[
        "status"
    ] == ("succeeded")

    def texts() -> list[str]:
        return [message["text"] for message in sms_received(stack, artisan["phone"])]

    wanted = ("حرفة: حسابك الآن في المستوى 1", "حرفة: دفعة \u200f9,00", "حرفة: \u200f9,00")
    wait_until(
        lambda: all(any(text.startswith(prefix) for text in texts()) for prefix in wanted),
        timeout=60,
        message=f"the tier, payment and funds SMS in Arabic (got {texts()})",
    )
    assert any("Demo marketplace" in text for text in texts())
    assert {message["encoding"] for message in sms_received(stack, artisan["phone"])} == {"UCS-2"}

    tokens = sign_in(stack, artisan["phone"], "phone-of-the-artisan-1")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    wait_until(
        lambda: any(text.startswith("حرفة: دخل هاتف جديد إلى حسابك") for text in texts()),
        timeout=60,
        message="the new-device SMS in Arabic",
    )

    def inbox() -> list[dict]:
        answer = requests.get(f"{stack.urls['onboarding']}/v1/notifications", headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]

    wait_until(
        lambda: (
            {n["kind"] for n in inbox() if n["status"] == "delivered"}
            >= {"kyc_tier_up", "payment_received", "funds_available"}
        ),
        timeout=30,
        message="the sandbox's receipts mark them delivered",
    )
    assert {n["language"] for n in inbox()} == {"ar"}
    # The artisan's token carries their language: problems come back in Arabic.
    missing = requests.post(
        f"{stack.urls['onboarding']}/v1/notifications/ntf_x/read", headers=headers, timeout=10
    )
    assert missing.status_code == 404 and missing.json()["detail"] == "لا يوجد إشعار ntf_x."
