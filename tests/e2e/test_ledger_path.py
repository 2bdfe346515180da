"""Money through the running processes: a card payment through the M2T sandbox lands, by
payments' event, in the artisan's pending balance, is released to available after the hold, and
is paid out to the artisan's bank account through the bank sandbox."""

from __future__ import annotations

import pytest

from tests.e2e.test_kyc_path import Client, verify_phone
from tests.e2e.test_payments_path import card_token
from tests.support import artisan_body, wait_until

pytestmark = pytest.mark.e2e


DEFAULT_RIB = "001810007800020110620318"


def registered_with_bank_account(stack, marketplace: Client, rib: str = DEFAULT_RIB) -> dict:
    """Registered, verified to tier 1 (cap 200 MAD) and with a linked bank account: the artisan,
    with ``bank_account_id``."""
    artisan = marketplace.call(
        "POST", "onboarding", "/v1/artisans", idempotent=True, json=artisan_body(full_name="Amina Tazi")
    ).json()
    verify_phone(stack, marketplace, artisan)
    linked = marketplace.call(
        "POST",
        "onboarding",
        f"/v1/artisans/{artisan['id']}/bank-accounts",
        idempotent=True,
        json={"mode": "link", "rib": rib, "holder_name": "Amina Tazi"},
    )
    assert linked.status_code == 201, linked.text
    return {**artisan, "bank_account_id": linked.json()["id"]}


def ready_artisan(stack, marketplace: Client) -> str:
    """The id of an artisan registered, verified to tier 1 and with a linked bank account."""
    return registered_with_bank_account(stack, marketplace)["id"]


def test_payment_to_payout_through_the_running_processes(stack):
    marketplace = Client(stack, "cli_demo_marketplace", "demo-marketplace-secret")
    artisan_id = ready_artisan(stack, marketplace)

    def balance() -> dict:
        response = marketplace.call("GET", "accounts", f"/v1/artisans/{artisan_id}/balance")
        return response.json() if response.status_code == 200 else {}

    def payee_tier() -> int | None:
        answer = marketplace.call("GET", "payments", f"/v1/payees/{artisan_id}")
        return answer.json()["kyc_tier"] if answer.ok else None

    # Payments must know the tier to take the payment. Accounts learns it from its own consumer,
    # maybe after the payment: then the payment waits, parked, and is posted once it does.
    wait_until(lambda: payee_tier() == 1, timeout=30, message="payments knows tier 1")
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
    payment = created.json()
    confirmed = marketplace.call(
        "POST",
        "payments",
        f"/v1/payments/{payment['id']}/confirm",
        json={"card_token": card_token(stack, "4242424242424242")},
    )
    assert confirmed.json()["status"] == "succeeded", confirmed.text
    # Pending first (the worker releases after ACCOUNTS_PENDING_HOLD_SECONDS=1), then available.
    wait_until(
        lambda: balance().get("available", {}).get("amount") == 13_500,
        timeout=30,
        message="the payment released to available",
    )
    assert balance()["pending"] == {"amount": 0, "currency": "MAD", "amount_decimal": "0.00"}

    def statement(account: str) -> list[tuple[str, int, int]]:
        lines = marketplace.call(
            "GET", "accounts", f"/v1/artisans/{artisan_id}/transactions", params={"account": account}
        ).json()["data"]
        return [
            (line["cause"], line["amount"]["amount"], line["running_balance"]["amount"]) for line in lines
        ]

    # The hold is short here (ACCOUNTS_PENDING_HOLD_SECONDS=1): the pending statement shows the
    # payment's stay there, in and out again, with its running balance.
    assert statement("pending") == [("payment", 13_500, 13_500), ("release", -13_500, 0)]
    assert statement("available") == [("release", 13_500, 13_500)]
    operator = Client(stack, "cli_demo_operator", "demo-operator-secret")
    entries = operator.call(
        "GET", "accounts", "/v1/journal-entries", params={"artisan_id": artisan_id}
    ).json()
    assert [e["cause"] for e in entries["data"]] == ["payment", "release"]

    payout = operator.call(
        "POST",
        "accounts",
        "/v1/payouts",
        idempotent=True,
        json={"artisan_id": artisan_id, "amount": 10_000, "currency": "MAD"},
    )
    assert payout.status_code in (201, 202), payout.text
    payout_id = payout.json()["id"]
    wait_until(
        lambda: operator.call("GET", "accounts", f"/v1/payouts/{payout_id}").json()["status"] == "paid",
        timeout=30,
        message="the bank pays the payout",
    )
    assert balance()["available"] == {"amount": 3_500, "currency": "MAD", "amount_decimal": "35.00"}
    assert statement("available")[-1] == ("payout", -10_000, 3_500)
    payout_entries = operator.call(
        "GET", "accounts", "/v1/journal-entries", params={"artisan_id": artisan_id, "cause": "payout"}
    ).json()["data"]
    assert len(payout_entries) == 2  # created (available → in transit), then paid (in transit → bank)
    integrity = operator.call("GET", "accounts", "/v1/ledger/integrity").json()
    assert integrity["ok"] is True, integrity
    too_much = operator.call(
        "POST",
        "accounts",
        "/v1/payouts",
        idempotent=True,
        json={"artisan_id": artisan_id, "amount": 10_000, "currency": "MAD"},
    )
    assert too_much.status_code in (409, 422) and too_much.json()["code"] == "insufficient_funds"
