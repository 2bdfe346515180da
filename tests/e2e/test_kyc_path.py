"""An artisan from registration to tier 3 with a bank account, over HTTP against the running
processes (services, relays, consumers, worker and the bank-partner sandbox), and every tier
change seen by payments and accounts through events."""

from __future__ import annotations

import re
import uuid

import pytest
import requests

from shared.config import SANDBOX_SMS_API_KEY
from tests.e2e.stack import Stack
from tests.support import artisan_body, wait_until

pytestmark = pytest.mark.e2e

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"front of the CIN card " * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"back of the CIN card " * 40
SELFIE = b"\xff\xd8\xff\xe1" + b"selfie " * 60


class Client:
    def __init__(self, stack: Stack, client_id: str, secret: str) -> None:
        self.stack = stack
        self.headers = {"Authorization": f"Bearer {stack.token(client_id, secret)}"}

    def call(
        self, method: str, service: str, path: str, *, idempotent: bool = False, **kwargs
    ) -> requests.Response:
        headers = dict(self.headers)
        if idempotent:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        return requests.request(
            method, f"{self.stack.urls[service]}{path}", headers=headers, timeout=10, **kwargs
        )


def sms_received(stack: Stack, phone: str) -> list[dict]:
    """What the SMS-gateway sandbox received for ``phone``, oldest first (as the phone would read it)."""
    response = requests.get(
        f"http://127.0.0.1:{stack.ports['sms_sandbox']}/v1/messages",
        params={"to": phone},
        headers={"Authorization": f"Bearer {SANDBOX_SMS_API_KEY}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["data"]


def last_sms_code(stack: Stack, phone: str) -> str:
    texts = [m["text"] for m in sms_received(stack, phone) if re.search(r"\b\d{6}\b", m["text"])]
    return re.search(r"\b(\d{6})\b", texts[-1]).group(1)


def verify_phone(stack: Stack, marketplace: Client, artisan: dict) -> None:
    """Tier 1: the code sent to the artisan's phone, read from the SMS sandbox and confirmed."""
    base = f"/v1/artisans/{artisan['id']}"
    assert marketplace.call("POST", "onboarding", f"{base}/phone-verification", idempotent=True).ok
    code = last_sms_code(stack, artisan["phone"])
    assert marketplace.call(
        "POST", "onboarding", f"{base}/phone-verification/confirm", json={"code": code}
    ).ok


def test_registration_to_tier_3_with_an_opened_bank_account(stack):
    marketplace = Client(stack, "cli_demo_marketplace", "demo-marketplace-secret")
    officer = Client(stack, "cli_demo_compliance", "demo-compliance-secret")

    registered = marketplace.call(
        "POST", "onboarding", "/v1/artisans", idempotent=True, json=artisan_body(full_name="Youssef Amrani")
    )
    assert registered.status_code == 201, registered.text
    artisan = registered.json()
    base = f"/v1/artisans/{artisan['id']}"

    def tier() -> int:
        return marketplace.call("GET", "onboarding", f"{base}/kyc").json()["tier"]

    def payee() -> dict:
        response = marketplace.call("GET", "payments", f"/v1/payees/{artisan['id']}")
        return response.json() if response.status_code == 200 else {}

    def balance() -> dict:
        response = marketplace.call("GET", "accounts", f"{base}/balance")
        return response.json() if response.status_code == 200 else {}

    # Tier 1: the OTP arrives by SMS.
    assert (
        marketplace.call("POST", "onboarding", f"{base}/phone-verification", idempotent=True).status_code
        == 201
    )
    code = last_sms_code(stack, artisan["phone"])
    confirmed = marketplace.call(
        "POST", "onboarding", f"{base}/phone-verification/confirm", json={"code": code}
    )
    assert confirmed.status_code == 200 and confirmed.json()["kyc_tier"] == 1

    # Tier 2: documents, screening already clear.
    for kind, data in (("id_front", JPEG), ("id_back", PNG), ("selfie", SELFIE)):
        uploaded = marketplace.call(
            "POST",
            "onboarding",
            f"{base}/documents",
            idempotent=True,
            data={"kind": kind},
            files={"file": ("scan", data)},
        )
        assert uploaded.status_code == 201, uploaded.text
    assert tier() == 2

    # Tier 3: a compliance officer approves the review case.
    queue = officer.call("GET", "onboarding", "/v1/kyc-reviews", params={"artisan_id": artisan["id"]}).json()[
        "data"
    ]
    [review] = queue
    decided = officer.call(
        "POST",
        "onboarding",
        f"/v1/kyc-reviews/{review['id']}/decision",
        idempotent=True,
        json={"decision": "approve", "reason_code": "documents_verified", "note": "CIN checked."},
    )
    assert decided.status_code == 200, decided.text
    assert tier() == 3

    # The other services learn every change through events.
    wait_until(lambda: payee().get("kyc_tier") == 3, timeout=30, message="payments sees tier 3")
    assert payee()["tier_cap"] == {"amount": 2000000, "currency": "MAD"}
    wait_until(lambda: balance().get("kyc_tier") == 3, timeout=30, message="accounts sees tier 3")
    assert balance()["cap"] == {"amount": 2000000, "currency": "MAD", "amount_decimal": "20000.00"}

    # A bank account opened at a partner bank: the sandbox answers by signed callback.
    opening = marketplace.call(
        "POST",
        "onboarding",
        f"{base}/bank-accounts",
        idempotent=True,
        json={"mode": "open", "bank": "al_barid_bank"},
    )
    assert opening.status_code == 202 and opening.json()["status"] == "pending", opening.text
    account_path = f"{base}/bank-accounts/{opening.json()['id']}"
    opened = wait_until(
        lambda: (a := marketplace.call("GET", "onboarding", account_path).json())["status"] == "opened" and a,
        timeout=30,
        message="the bank opens the account",
    )
    assert opened["rib"].startswith("350") and opened["iban"] == "MA" + opened["iban"][2:4] + opened["rib"]
    assert opened["is_default"] is True
    wait_until(
        lambda: payee().get("payout_eligible") is True, timeout=30, message="payments sees the account"
    )

    # A downgrade reaches both services too.
    officer_2 = Client(stack, "cli_demo_compliance_2", "demo-compliance-2-secret")
    lowered = officer_2.call(
        "POST",
        "onboarding",
        f"{base}/kyc/downgrades",
        idempotent=True,
        json={"tier": 1, "reason_code": "identity_mismatch", "note": "Re-check needed."},
    )
    assert lowered.status_code == 201, lowered.text
    wait_until(lambda: payee().get("kyc_tier") == 1, timeout=30, message="payments sees the downgrade")
    wait_until(
        lambda: balance().get("cap") == {"amount": 20000, "currency": "MAD", "amount_decimal": "200.00"},
        timeout=30,
        message="accounts sees the lower cap",
    )


def test_linking_an_existing_account_over_http(stack):
    marketplace = Client(stack, "cli_demo_marketplace", "demo-marketplace-secret")
    body = artisan_body(full_name="Amina Tazi")
    artisan = marketplace.call("POST", "onboarding", "/v1/artisans", idempotent=True, json=body).json()
    base = f"/v1/artisans/{artisan['id']}"
    verify_phone(stack, marketplace, artisan)  # linking needs tier 1
    linked = marketplace.call(
        "POST",
        "onboarding",
        f"{base}/bank-accounts",
        idempotent=True,
        json={"mode": "link", "rib": "001810007800020110620318", "holder_name": "TAZI Amina"},
    )
    assert linked.status_code == 201 and linked.json()["status"] == "linked", linked.text
    bad = marketplace.call(
        "POST",
        "onboarding",
        f"{base}/bank-accounts",
        idempotent=True,
        json={"mode": "link", "rib": "001810007800020110620317", "holder_name": "TAZI Amina"},
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_rib"
    too_low = marketplace.call(
        "POST",
        "onboarding",
        f"{base}/bank-accounts",
        idempotent=True,
        json={"mode": "open", "bank": "cih_bank"},
    )
    assert too_low.status_code == 409 and too_low.json()["code"] == "kyc_tier_too_low"
