"""A day of money reconciled through the running processes (issue 12, the first test that must
exist): card and wallet payments, a refund, a lost dispute and a payout go through payments, the
M2T sandbox, accounts and the bank sandbox; then the day's settlement file and client-funds
statement are fetched and matched against the ledger. Every item matches, no case opens,
``bank:145`` equals the bank's closing balance and the ledger is sound.

The worker fetches only days that are over (yesterday and before), and the payments here happen
today, so the test asks for today's files the way an operator would on the day:
``hirfa accounts reconcile --fetch --day <today>``, run with the stack's own settings. The bank
sandbox runs as in ``make run``: settlement lag 0, reading the M2T sandbox's file (deploy/Procfile).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from shared.bank_statements.camt053 import read_camt053
from shared.config import SANDBOX_BANK_API_KEY
from tests.e2e.test_kyc_path import Client
from tests.e2e.test_ledger_path import ready_artisan
from tests.e2e.test_payments_path import M2T_API_KEY, card_token
from tests.support import ROOT, wait_until

pytestmark = pytest.mark.e2e

BANK_CODE = "145"
VISA_US = "4242424242424242"  # international
CMI = "6500000000000002"  # domestic
DISPUTE_CARD = "4000000000000259"  # succeeds, then the acquirer opens a dispute
APPROVING_WALLET = "+212600000001"


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def pay(marketplace: Client, artisan_id: str, amount: int, **confirm_body) -> str:
    """A payment of ``amount`` with a 10 % marketplace fee, confirmed; its id."""
    method = "mobile_wallet" if "phone" in confirm_body else "card"
    created = marketplace.call(
        "POST",
        "payments",
        "/v1/payments",
        idempotent=True,
        json={
            "artisan_id": artisan_id,
            "amount": amount,
            "currency": "MAD",
            "application_fee": amount // 10,
            "payment_method_type": method,
        },
    )
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    confirmed = marketplace.call("POST", "payments", f"/v1/payments/{payment_id}/confirm", json=confirm_body)
    assert confirmed.status_code == 200, confirmed.text
    wait_until(
        lambda: (
            marketplace.call("GET", "payments", f"/v1/payments/{payment_id}").json()["status"] == "succeeded"
        ),
        timeout=30,
        message=f"payment {payment_id} succeeds",
    )
    return payment_id


def lose_dispute_at_the_acquirer(stack, marketplace: Client, payment_id: str) -> None:
    """Wait for the dispute the test card opens, then have the card holder's bank win it: the
    acquirer takes the money back (a chargeback line in the day's settlement file)."""

    def disputes() -> list[dict]:
        return marketplace.call("GET", "payments", "/v1/disputes", params={"payment_id": payment_id}).json()[
            "data"
        ]

    [dispute] = wait_until(disputes, timeout=30, message="the acquirer opens the test card's dispute")
    closed = requests.post(
        f"http://127.0.0.1:{stack.ports['m2t_sandbox']}/v1/sandbox/disputes/{dispute['gateway_reference']}/close",
        json={"outcome": "lost"},
        headers={"Authorization": f"Bearer {M2T_API_KEY}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert closed.status_code == 200, closed.text
    wait_until(
        lambda: disputes()[0]["status"] == "lost", timeout=30, message="payments learns the dispute is lost"
    )


def fetch_today(stack) -> str:
    """``hirfa accounts reconcile --fetch --day <today>`` with the stack's settings: today's
    settlement file from the M2T sandbox, then today's statement from the bank sandbox."""
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "hirfa"),
            "accounts",
            "reconcile",
            "--fetch",
            "--day",
            str(utc_today()),
        ],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def bank_statement_closing(stack) -> int:
    """Today's closing balance of the client-funds account, as the bank sandbox reports it."""
    answer = requests.get(
        f"http://127.0.0.1:{stack.ports['bank_sandbox']}/v1/accounts/{BANK_CODE}/statements/{utc_today()}",
        params={"format": "camt053"},
        headers={"Authorization": f"Bearer {SANDBOX_BANK_API_KEY}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    [statement] = read_camt053(answer.content)
    return statement.closing.amount


def ledger_statement_closing(bank_partner: Client) -> int:
    """Today's closing balance of ``bank:145`` in Hirfa's ledger, as the bank partner reads it."""
    answer = bank_partner.call(
        "GET",
        "accounts",
        "/v1/statements",
        params={"account": f"bank:{BANK_CODE}", "date": str(utc_today()), "format": "camt053"},
    )
    assert answer.status_code == 200, answer.text
    [statement] = read_camt053(answer.content)
    return statement.closing.amount


def test_a_day_of_payments_refunds_a_dispute_and_a_payout_reconciles_through_the_running_processes(stack):
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

    # The day's business: two card payments (international and domestic), a wallet payment, a
    # partial refund, and a payment the card holder disputes and wins.
    card_payment = pay(marketplace, artisan_id, 6_000, card_token=card_token(stack, VISA_US))
    domestic_payment = pay(marketplace, artisan_id, 4_000, card_token=card_token(stack, CMI))
    wallet_payment = pay(marketplace, artisan_id, 3_000, phone=APPROVING_WALLET)
    disputed_payment = pay(marketplace, artisan_id, 2_000, card_token=card_token(stack, DISPUTE_CARD))
    refund = marketplace.call(
        "POST",
        "payments",
        "/v1/refunds",
        idempotent=True,
        json={"payment_id": domestic_payment, "amount": 1_000},
    )
    assert refund.status_code == 201, refund.text

    def refunded() -> int:
        payment = marketplace.call("GET", "payments", f"/v1/payments/{domestic_payment}").json()
        return payment["amount_refunded"]["amount"]

    wait_until(
        lambda: refunded() == 1_000,
        timeout=30,
        message="the refund succeeds at the gateway",
    )
    lose_dispute_at_the_acquirer(stack, marketplace, disputed_payment)

    def causes() -> list[str]:
        entries = operator.call(
            "GET", "accounts", "/v1/journal-entries", params={"artisan_id": artisan_id, "limit": 100}
        ).json()["data"]
        return sorted(entry["cause"] for entry in entries if entry["cause"] != "release")

    wait_until(
        lambda: causes() == ["dispute", "dispute", "payment", "payment", "payment", "payment", "refund"],
        timeout=30,
        message="accounts posts the payments, the refund and the dispute (opened, then lost)",
    )

    # The artisan is paid out to a RIB whose transfers the bank sandbox pays (and debits).
    def available() -> int:
        balance = marketplace.call("GET", "accounts", f"/v1/artisans/{artisan_id}/balance").json()
        return balance.get("available", {}).get("amount", 0)

    wait_until(lambda: available() >= 5_000, timeout=30, message="the payments released to available")
    payout = operator.call(
        "POST",
        "accounts",
        "/v1/payouts",
        idempotent=True,
        json={"artisan_id": artisan_id, "amount": 5_000, "currency": "MAD"},
    )
    assert payout.status_code in (201, 202), payout.text
    payout_id = payout.json()["id"]
    wait_until(
        lambda: operator.call("GET", "accounts", f"/v1/payouts/{payout_id}").json()["status"] == "paid",
        timeout=30,
        message="the bank pays the payout",
    )

    fetched = fetch_today(stack)
    assert f"gateway_settlement m2t {utc_today()}" in fetched, fetched
    assert f"bank_statement {BANK_CODE} {utc_today()}" in fetched, fetched

    # Every run (today's, and the empty day before that the worker fetched on its own) completed,
    # and every item of them matched.
    runs = operator.call("GET", "accounts", "/v1/reconciliation/runs", params={"limit": 100}).json()["data"]

    def found(run: dict) -> dict[str, int]:
        return {state: count for state, count in run["counts"].items() if count}  # states seen

    summaries = [(run["source"], run["day"], run["status"], found(run)) for run in runs]
    yesterday = str(utc_today() - dt.timedelta(days=1))
    # Today's file: four captures, the refund and the chargeback; today's statement: the card
    # batch, the wallet batch and the payout's debit. Yesterday's files are empty.
    assert sorted(summaries) == [
        ("bank_statement", yesterday, "completed", {}),
        ("bank_statement", str(utc_today()), "completed", {"matched": 3}),
        ("gateway_settlement", yesterday, "completed", {}),
        ("gateway_settlement", str(utc_today()), "completed", {"matched": 6}),
    ]

    cases = operator.call("GET", "accounts", "/v1/reconciliation/cases", params={"limit": 100}).json()["data"]
    assert cases == []
    # The bank partner sees the same, its own bank's runs and cases.
    assert bank_partner.call("GET", "accounts", "/v1/reconciliation/cases").json()["data"] == []

    # The ledger's client-funds account says what the bank says it holds.
    assert ledger_statement_closing(bank_partner) == bank_statement_closing(stack)
    [statement_run] = [
        operator.call("GET", "accounts", f"/v1/reconciliation/runs/{run['id']}").json()
        for run in runs
        if run["source"] == "bank_statement" and run["day"] == str(utc_today())
    ]
    assert statement_run["closing_balance"] == statement_run["expected_balance"], statement_run

    integrity = operator.call("GET", "accounts", "/v1/ledger/integrity").json()
    assert (integrity["ok"], integrity["differences"]) == (True, []), integrity

    # The card payment's three legs: the ledger's entries (the payment, its release from pending,
    # the settlement the acquirer's line posted), the acquirer's capture line, the bank's batch credit.
    view = operator.call(
        "GET", "accounts", "/v1/reconciliation/items", params={"object_id": card_payment}
    ).json()
    assert view["fully_matched"] is True and view["breaks"] == [], view
    assert [leg["cause"] for leg in view["legs"]["ledger"]] == ["payment", "release", "settlement"], view
    assert [(item["kind"], item["state"]) for item in view["legs"]["acquirer"]] == [("capture", "matched")]
    assert [(item["kind"], item["state"]) for item in view["legs"]["bank"]] == [("batch", "matched")]
    day = f"{utc_today():%Y%m%d}"
    # Each payment's bank leg is the credit of its own batch: card and wallet settle apart.
    for payment_id, batch in ((card_payment, f"M2T-{day}-CARD"), (wallet_payment, f"M2T-{day}-WALLET")):
        view = operator.call(
            "GET", "accounts", "/v1/reconciliation/items", params={"object_id": payment_id}
        ).json()
        assert [item["reference"] for item in view["legs"]["bank"]] == [batch], view

    def legs(object_id: str) -> dict[str, list[tuple[str, str]]]:
        """Each leg of ``object_id``'s three-way view: the ledger's causes, the files' kinds and states."""
        view = operator.call(
            "GET", "accounts", "/v1/reconciliation/items", params={"object_id": object_id}
        ).json()
        assert view["fully_matched"] is True and view["breaks"] == [], view
        return {
            "ledger": [(leg["cause"], "posted") for leg in view["legs"]["ledger"]],
            "acquirer": [(item["kind"], item["state"]) for item in view["legs"]["acquirer"]],
            "bank": [(item["kind"], item["state"]) for item in view["legs"]["bank"]],
        }

    # The lost dispute: the capture and the acquirer's chargeback, both in the card batch.
    disputed = legs(disputed_payment)
    assert disputed["acquirer"] == [("capture", "matched"), ("chargeback", "matched")], disputed
    assert disputed["bank"] == [("batch", "matched")], disputed
    # The refund: its settlement line (netted into the card batch the bank credited).
    assert legs(refund.json()["id"])["acquirer"] == [("refund", "matched")]
    # The payout: taken from the artisan, then paid; the bank's debit. No acquirer leg.
    assert legs(payout_id) == {
        "ledger": [("payout", "posted"), ("payout", "posted")],
        "acquirer": [],
        "bank": [("payout", "matched")],
    }
