"""Payments through the running processes and the M2T gateway sandbox process: every test card and
phone, 3-D Secure, wallets, a timeout and a gateway error recovered by the payments worker, refunds,
a dispute, and the money reaching the ledger in accounts."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.e2e.test_kyc_path import Client, verify_phone
from tests.http_support import CallbackReceiver, verify_hirfa_signature
from tests.support import artisan_body, wait_until

pytestmark = pytest.mark.e2e

M2T_API_KEY = "sandbox-m2t-api-key"  # the sandbox's development default, as in the README


@pytest.fixture(scope="module")
def marketplace(stack) -> Client:
    return Client(stack, "cli_demo_marketplace", "demo-marketplace-secret")


@pytest.fixture(scope="module")
def artisan_id(stack, marketplace) -> str:
    """An artisan verified to tier 1 (cap 200 MAD), known to payments through onboarding's events."""
    artisan = marketplace.call(
        "POST", "onboarding", "/v1/artisans", idempotent=True, json=artisan_body(full_name="Salma Bennani")
    ).json()
    verify_phone(stack, marketplace, artisan)

    def payee_tier() -> int | None:
        answer = marketplace.call("GET", "payments", f"/v1/payees/{artisan['id']}")
        return answer.json()["kyc_tier"] if answer.ok else None

    wait_until(lambda: payee_tier() == 1, timeout=30, message="payments knows tier 1")
    return artisan["id"]


def card_token(stack, number: str) -> str:
    """What the buyer's browser does on the marketplace's checkout page: the card goes to M2T only."""
    answer = requests.post(
        f"http://127.0.0.1:{stack.ports['m2t_sandbox']}/v1/tokens",
        json={"card_number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        headers={"Authorization": f"Bearer {M2T_API_KEY}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def create(marketplace: Client, artisan_id: str, **fields) -> dict:
    body = {
        "artisan_id": artisan_id,
        "amount": 1000,
        "currency": "MAD",
        "application_fee": 100,
        "payment_method_type": "card",
        **fields,
    }
    answer = marketplace.call("POST", "payments", "/v1/payments", idempotent=True, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def confirm(marketplace: Client, payment_id: str, **body) -> dict:
    answer = marketplace.call("POST", "payments", f"/v1/payments/{payment_id}/confirm", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def status_of(marketplace: Client, payment_id: str) -> dict:
    return marketplace.call("GET", "payments", f"/v1/payments/{payment_id}").json()


@pytest.mark.parametrize(
    ("number", "status", "failure_code"),
    [
        ("4242424242424242", "succeeded", None),
        ("5555555555554444", "succeeded", None),
        ("6500000000000002", "succeeded", None),
        ("4000000000009995", "failed", "insufficient_funds"),
        ("4000000000009979", "failed", "stolen_card"),
    ],
)
def test_each_test_card(stack, marketplace, artisan_id, number, status, failure_code):
    payment = create(marketplace, artisan_id)
    answer = confirm(marketplace, payment["id"], card_token=card_token(stack, number))
    assert (answer["status"], answer["failure_code"]) == (status, failure_code)
    assert answer["card"]["last4"] == number[-4:]


@pytest.mark.parametrize(("outcome", "status"), [("authenticate", "succeeded"), ("fail", "failed")])
def test_three_d_secure_round_trip(stack, marketplace, artisan_id, outcome, status):
    payment = create(marketplace, artisan_id)
    answer = confirm(
        marketplace,
        payment["id"],
        card_token=card_token(stack, "4000000000003220"),
        return_url="https://shop.example/orders/42",
    )
    assert answer["status"] == "requires_action"
    challenge = answer["next_action"]["redirect_url"]
    assert requests.get(challenge, timeout=10).status_code == 200  # the buyer sees the bank's page
    back = requests.post(challenge, data={"outcome": outcome}, allow_redirects=False, timeout=10)
    assert back.status_code == 303
    assert back.headers["Location"] == f"{stack.urls['payments']}/v1/payments/{payment['id']}/three-ds-return"
    landing = requests.get(back.headers["Location"], allow_redirects=False, timeout=10)
    assert landing.status_code == 303
    assert landing.headers["Location"] == (
        f"https://shop.example/orders/42?payment_id={payment['id']}&status={status}"
    )
    assert status_of(marketplace, payment["id"])["status"] == status


@pytest.mark.parametrize(
    ("phone", "status", "failure_code"),
    [
        ("+212600000001", "succeeded", None),
        ("+212600000002", "failed", "wallet_declined"),
        ("+212600000003", "failed", "wallet_request_expired"),  # never answers: the worker finds it expired
    ],
)
def test_each_test_wallet(stack, marketplace, artisan_id, phone, status, failure_code):
    payment = create(marketplace, artisan_id, payment_method_type="mobile_wallet")
    answer = confirm(marketplace, payment["id"], phone=phone)
    assert answer["status"] == "requires_action"
    assert answer["next_action"]["type"] == "wallet_approval"
    wait_until(
        lambda: status_of(marketplace, payment["id"])["status"] == status,
        timeout=30,
        message=f"the wallet payment ends {status}",
    )
    assert status_of(marketplace, payment["id"])["failure_code"] == failure_code


def test_a_gateway_error_stays_processing_then_fails_once_the_gateway_confirms_nothing_was_charged(
    stack, marketplace, artisan_id
):
    payment = create(marketplace, artisan_id)
    answer = confirm(marketplace, payment["id"], card_token=card_token(stack, "4000000000000119"))
    assert answer["status"] == "processing"
    wait_until(
        lambda: status_of(marketplace, payment["id"])["status"] == "failed",
        timeout=30,
        message="the payments worker settles the payment",
    )
    assert status_of(marketplace, payment["id"])["failure_code"] == "processing_error"


def test_a_timeout_stays_processing_then_recovers_the_charge_that_went_through(
    stack, marketplace, artisan_id
):
    payment = create(marketplace, artisan_id)
    answer = confirm(marketplace, payment["id"], card_token=card_token(stack, "4000000000000127"))
    # Never failed: processing, or already succeeded when the gateway's callback beat the timeout.
    # (tests/integration/test_payments_api.py shows the recovery poll alone, with no callback.)
    assert answer["status"] in ("processing", "succeeded")
    wait_until(
        lambda: status_of(marketplace, payment["id"])["status"] == "succeeded",
        timeout=30,
        message="the charge that went through is found",
    )
    attempts = marketplace.call("GET", "payments", f"/v1/payments/{payment['id']}/attempts").json()["data"]
    assert [(a["operation"], a["outcome"]) for a in attempts if a["operation"] == "authorise"] == [
        ("authorise", "unknown")
    ]


def test_refunds_and_the_money_in_the_ledger(stack, marketplace, artisan_id):
    payment = create(marketplace, artisan_id, amount=2000, application_fee=200)
    assert (
        confirm(marketplace, payment["id"], card_token=card_token(stack, "4242424242424242"))["status"]
        == "succeeded"
    )
    operator = Client(stack, "cli_demo_operator", "demo-operator-secret")

    def entries(cause: str) -> list:
        found = operator.call(
            "GET", "accounts", "/v1/journal-entries", params={"artisan_id": artisan_id, "limit": 100}
        ).json()
        return [
            e for e in found["data"] if e["cause"] == cause and e["cause_id"] in (payment["id"], *refund_ids)
        ]

    refund_ids: list[str] = []
    wait_until(lambda: len(entries("payment")) == 1, timeout=30, message="accounts posts the payment")

    def refund(**body):
        return marketplace.call(
            "POST", "payments", "/v1/refunds", idempotent=True, json={"payment_id": payment["id"], **body}
        )

    partial = refund(amount=500)
    assert partial.status_code == 201, partial.text
    assert partial.json()["application_fee_refunded"] == {"amount": 50, "currency": "MAD"}
    over = refund(amount=1501)
    assert over.status_code == 409 and over.json()["code"] == "refund_exceeds_captured"
    rest = refund()
    assert rest.json()["amount"] == {"amount": 1500, "currency": "MAD"}
    refund_ids += [partial.json()["id"], rest.json()["id"]]
    wait_until(
        lambda: status_of(marketplace, payment["id"])["amount_refunded"]["amount"] == 2000,
        timeout=30,
        message="both refunds succeed at the gateway",
    )
    wait_until(lambda: len(entries("refund")) == 2, timeout=30, message="accounts posts both refunds")
    integrity = operator.call("GET", "accounts", "/v1/ledger/integrity").json()
    assert integrity["ok"] is True, integrity


def test_a_dispute_opens_from_the_gateway(stack, marketplace, artisan_id):
    payment = create(marketplace, artisan_id)
    assert (
        confirm(marketplace, payment["id"], card_token=card_token(stack, "4000000000000259"))["status"]
        == "succeeded"
    )

    def disputes() -> list:
        listed = marketplace.call(
            "GET", "payments", "/v1/disputes", params={"payment_id": payment["id"]}
        ).json()
        return listed["data"]

    wait_until(lambda: len(disputes()) == 1, timeout=30, message="the gateway opens a dispute")
    [dispute] = disputes()
    assert dispute["status"] == "open"
    operator = Client(stack, "cli_demo_operator", "demo-operator-secret")

    def dispute_entries() -> list:
        found = operator.call(
            "GET", "accounts", "/v1/journal-entries", params={"artisan_id": artisan_id, "limit": 100}
        ).json()
        return [e for e in found["data"] if e["cause"] == "dispute" and e["cause_id"] == dispute["id"]]

    # The disputed money is held in the ledger, once.
    wait_until(lambda: len(dispute_entries()) == 1, timeout=30, message="accounts holds the disputed funds")


def test_a_marketplace_receives_signed_webhooks_from_the_running_worker(stack, marketplace, artisan_id):
    receiver = CallbackReceiver("/hirfa/webhooks")
    receiver.start()
    try:
        endpoint = marketplace.call(
            "POST",
            "payments",
            "/v1/webhook-endpoints",
            idempotent=True,
            json={"url": receiver.url, "event_types": ["payment.succeeded"]},
        )
        assert endpoint.status_code == 201, endpoint.text
        secret = endpoint.json()["secret"]
        payment = create(marketplace, artisan_id)
        confirm(marketplace, payment["id"], card_token=card_token(stack, "4242424242424242"))
        [delivery] = receiver.wait_for_matching(
            lambda d: d.event["data"]["object"]["id"] == payment["id"], 1, timeout=30
        )
    finally:
        receiver.stop()
    assert verify_hirfa_signature(secret, delivery.headers["Hirfa-Signature"], delivery.body)
    assert not verify_hirfa_signature(secret, delivery.headers["Hirfa-Signature"], delivery.body + b" ")
    event = delivery.event
    assert event["type"] == "payment.succeeded"
    assert event["data"]["object"]["status"] == "succeeded"
    assert event["sequence"] >= 1
