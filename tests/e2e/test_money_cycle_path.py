"""The money cycle through the running processes: the platform's fee on a card payment goes to
revenue, the marketplace's commission is paid out to its registered RIB through the bank sandbox,
an operator's small adjustment posts at once, and the ledger stays sound."""

from __future__ import annotations

import pytest

from shared.banking import make_rib
from tests.e2e.test_kyc_path import Client
from tests.e2e.test_ledger_path import ready_artisan
from tests.e2e.test_payments_path import card_token
from tests.support import wait_until

pytestmark = pytest.mark.e2e

MARKETPLACE = "cli_demo_marketplace"
MARKETPLACE_RIB = make_rib("230", "780", "0000004444555566")


def test_platform_fee_commission_payout_and_adjustment_through_the_running_processes(stack):
    marketplace = Client(stack, MARKETPLACE, "demo-marketplace-secret")
    operator = Client(stack, "cli_demo_operator", "demo-operator-secret")
    settings = f"/v1/marketplaces/{MARKETPLACE}"
    fee = operator.call(
        "PUT", "accounts", f"{settings}/platform-fee", json={"basis_points": 200, "fixed": 50}
    )
    assert fee.status_code == 200, fee.text
    account = marketplace.call(
        "PUT",
        "accounts",
        f"{settings}/payout-account",
        json={"rib": MARKETPLACE_RIB, "holder_name": "Demo Marketplace SARL"},
    )
    assert account.status_code == 200, account.text

    artisan_id = ready_artisan(stack, marketplace)
    wait_until(
        lambda: (
            (answer := marketplace.call("GET", "payments", f"/v1/payees/{artisan_id}")).ok
            and answer.json()["kyc_tier"] == 1
        ),
        timeout=30,
        message="payments knows tier 1",
    )
    created = marketplace.call(
        "POST",
        "payments",
        "/v1/payments",
        idempotent=True,
        json={
            "artisan_id": artisan_id,
            "amount": 15_000,
            "currency": "MAD",
            "application_fee": 1_500,
            "payment_method_type": "card",
        },
    )
    assert created.status_code == 201, created.text
    confirmed = marketplace.call(
        "POST",
        "payments",
        f"/v1/payments/{created.json()['id']}/confirm",
        json={"card_token": card_token(stack, "4242424242424242")},
    )
    assert confirmed.json()["status"] == "succeeded", confirmed.text

    def payment_entry() -> dict | None:
        found = operator.call(
            "GET", "accounts", "/v1/journal-entries", params={"artisan_id": artisan_id, "cause": "payment"}
        ).json()["data"]
        return found[0] if found else None

    entry = wait_until(payment_entry, timeout=30, message="the payment is posted")
    lines = {(line["owner_type"], line["kind"]): line["amount"] for line in entry["lines"]}
    # 2 % of 150.00 + 0.50 = 3.50 for the platform, out of the marketplace's 15.00.
    assert lines == {
        ("platform", "gateway_receivable:m2t"): 15_000,
        ("artisan", "pending"): -13_500,
        ("marketplace", "commission"): -1_150,
        ("platform", "revenue"): -350,
    }

    payout = operator.call("POST", "accounts", f"{settings}/commission-payouts", idempotent=True, json={})
    assert payout.status_code == 201, payout.text
    assert payout.json()["amount"] == {"amount": 1_150, "currency": "MAD"}
    payout_id = payout.json()["id"]
    wait_until(
        lambda: marketplace.call("GET", "accounts", f"/v1/payouts/{payout_id}").json()["status"] == "paid",
        timeout=30,
        message="the bank sandbox pays the commission payout",
    )
    listed = marketplace.call("GET", "accounts", f"{settings}/commission-payouts").json()["data"]
    assert payout_id in [p["id"] for p in listed]

    adjustment = operator.call(
        "POST",
        "accounts",
        "/v1/ledger/adjustments",
        idempotent=True,
        json={
            "reason": "Goodwill: the platform's fee on the first sale returned",
            "lines": [
                {"owner_type": "platform", "owner_id": "platform", "kind": "revenue", "amount": 350},
                {"owner_type": "marketplace", "owner_id": MARKETPLACE, "kind": "commission", "amount": -350},
            ],
        },
    )
    assert adjustment.status_code == 201, adjustment.text
    assert adjustment.json()["status"] == "posted"

    integrity = operator.call("GET", "accounts", "/v1/ledger/integrity").json()
    assert integrity["ok"] is True, integrity
