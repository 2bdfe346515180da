"""An injected break through the running processes: the M2T sandbox charges 50 centimes above its
fee schedule on a capture whose amount ends in ``…73``. Today's files, fetched and matched against
the ledger, open exactly one case, a ``fee_mismatch`` on that payment, and nothing else: the
fee is posted as the acquirer took it, so the bank's batch credit still matches and ``bank:145``
still equals the statement's closing balance. Once an operator resolves the case, the payment's
three-way view is fully matched.

Its own module, so its own stack and day: the clean day of test_reconciliation_path.py must not
see this case, and a day's files fetched again would see its lines as duplicates."""

from __future__ import annotations

import pytest

from tests.e2e.test_kyc_path import Client
from tests.e2e.test_ledger_path import ready_artisan
from tests.e2e.test_payments_path import card_token
from tests.e2e.test_reconciliation_path import (
    CMI,
    bank_statement_closing,
    fetch_today,
    ledger_statement_closing,
    pay,
    utc_today,
)
from tests.support import wait_until

pytestmark = pytest.mark.e2e

FEE_ABOVE_SCHEDULE = 1_073  # the sandbox's test amount: the fee is 50 centimes above the schedule


def test_a_fee_above_the_schedule_opens_one_fee_mismatch_case_and_nothing_else(stack):
    marketplace = Client(stack, "cli_demo_marketplace", "demo-marketplace-secret")
    operator = Client(stack, "cli_demo_operator", "demo-operator-secret")
    bank_partner = Client(stack, "cli_demo_bank", "demo-bank-secret")
    artisan_id = ready_artisan(stack, marketplace)
    wait_until(
        lambda: (
            (answer := marketplace.call("GET", "payments", f"/v1/payees/{artisan_id}")).ok
            and answer.json()["kyc_tier"] == 1
        ),
        timeout=30,
        message="payments knows tier 1",
    )
    payment_id = pay(marketplace, artisan_id, FEE_ABOVE_SCHEDULE, card_token=card_token(stack, CMI))
    wait_until(
        lambda: operator.call(
            "GET", "accounts", "/v1/journal-entries", params={"artisan_id": artisan_id, "cause": "payment"}
        ).json()["data"],
        timeout=30,
        message="accounts posts the payment",
    )

    fetch_today(stack)

    runs = operator.call("GET", "accounts", "/v1/reconciliation/runs", params={"limit": 100}).json()["data"]
    today = [
        (run["source"], {state: count for state, count in run["counts"].items() if count})
        for run in runs
        if run["day"] == str(utc_today())
    ]
    assert sorted(today) == [
        ("bank_statement", {"matched": 1}),  # the batch credit: the fee as the acquirer took it
        ("gateway_settlement", {"fee_mismatch": 1}),
    ], runs
    cases = operator.call("GET", "accounts", "/v1/reconciliation/cases", params={"limit": 100}).json()["data"]
    assert [(case["kind"], case["state"], case["object_id"]) for case in cases] == [
        ("fee_mismatch", "open", payment_id)
    ], cases
    assert cases[0]["amount"]["amount"] == 50, cases  # what the acquirer took above the schedule
    # The bank partner sees the case too: it is about its bank's money.
    assert [
        case["id"] for case in bank_partner.call("GET", "accounts", "/v1/reconciliation/cases").json()["data"]
    ] == [cases[0]["id"]]

    view = operator.call(
        "GET", "accounts", "/v1/reconciliation/items", params={"object_id": payment_id}
    ).json()
    assert view["fully_matched"] is False
    assert [(item["kind"], item["state"]) for item in view["breaks"]] == [("capture", "fee_mismatch")], view
    assert [(item["kind"], item["state"]) for item in view["legs"]["bank"]] == [("batch", "matched")], view

    assert ledger_statement_closing(bank_partner) == bank_statement_closing(stack)

    # An operator, having asked M2T, closes the case: the payment is then fully matched.
    resolved = operator.call(
        "POST",
        "accounts",
        f"/v1/reconciliation/cases/{cases[0]['id']}/resolve",
        idempotent=True,
        json={"note": "M2T confirms a surcharge on this card", "item_id": view["breaks"][0]["id"]},
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["state"] == "resolved"
    view = operator.call(
        "GET", "accounts", "/v1/reconciliation/items", params={"object_id": payment_id}
    ).json()
    assert view["fully_matched"] is True, view
    integrity = operator.call("GET", "accounts", "/v1/ledger/integrity").json()
    assert (integrity["ok"], integrity["differences"]) == (True, []), integrity
