"""What the broker acknowledged and then lost is not lost: the real processes, with the embedded
broker killed (it keeps everything in memory, so killed and started again it has lost every topic,
record and committed offset) while payments succeed.

What was seen before the relay and the consumers noticed such a loss: after an outage of about
25 s, the accounts consumer kept its positions and committed them on the topics made anew (offsets
18/18/36 where the new topics ended at 1/1/23), so the records published there first were skipped
for good, and 1 to 12 succeeded payments never reached the ledger; with the accounts consumer
lagging when the broker died, every payment the relay had marked sent stayed out until an operator
ran ``events replay``. Nothing noticed either: integrity was ok, no case, ``/readyz`` green.

Here nobody replays and nobody restarts a consumer: every payment the API called succeeded is in
the ledger exactly once, and the integrity report is ok. And with the relay's repair turned off,
accounts' completeness check still notices: a case per lost payment and a failed integrity report,
until the payments are replayed.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import assert_ledger_sound
from tests.e2e.stack import Stack
from tests.e2e.test_kyc_path import Client, verify_phone
from tests.e2e.test_payments_path import card_token, confirm, create
from tests.support import ROOT, artisan_body, wait_until

pytestmark = pytest.mark.e2e

# Payments of 10 MAD (1 MAD to the marketplace) to tier-1 artisans (cap 200 MAD), spread over a few.
AMOUNT, FEE = 1000, 100
ARTISANS = 4
OUTAGE_SECONDS = 12


@pytest.fixture(scope="module")
def marketplace(stack) -> Client:
    return Client(stack, "cli_demo_marketplace", "demo-marketplace-secret")


@pytest.fixture(scope="module")
def operator(stack) -> Client:
    return Client(stack, "cli_demo_operator", "demo-operator-secret")


@pytest.fixture(scope="module")
def artisans(stack, marketplace) -> list[str]:
    """Artisans verified to tier 1, known to payments as payees that can be paid."""
    ids = []
    for _ in range(ARTISANS):
        artisan = marketplace.call(
            "POST", "onboarding", "/v1/artisans", idempotent=True, json=artisan_body()
        ).json()
        verify_phone(stack, marketplace, artisan)
        ids.append(artisan["id"])

    def payable(artisan_id: str) -> bool:
        answer = marketplace.call("GET", "payments", f"/v1/payees/{artisan_id}")
        return answer.ok and answer.json()["can_accept_payments"]

    wait_until(lambda: all(payable(a) for a in ids), timeout=60, message="payments knows the payees")
    return ids


class Payments:
    """Pays the artisans in turn with an approved card; remembers every payment that succeeded."""

    def __init__(self, stack: Stack, marketplace: Client, artisans: list[str]) -> None:
        self.stack, self.marketplace, self.artisans = stack, marketplace, artisans
        self.succeeded: dict[str, str] = {}  # payment id -> artisan id

    def pay(self, count: int) -> None:
        for _ in range(count):
            artisan_id = self.artisans[len(self.succeeded) % len(self.artisans)]
            payment = create(self.marketplace, artisan_id, amount=AMOUNT, application_fee=FEE)
            answer = confirm(
                self.marketplace, payment["id"], card_token=card_token(self.stack, "4242424242424242")
            )
            assert answer["status"] == "succeeded", answer
            self.succeeded[payment["id"]] = artisan_id


def gauge(stack: Stack, service: str, name: str) -> float:
    text = requests.get(f"{stack.urls[service]}/metrics", timeout=5).text
    [line] = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


def outbox_backlog(stack: Stack, service: str) -> float:
    return gauge(stack, service, "hirfa_outbox_backlog")


def posted_payments(operator: Client, artisans: list[str]) -> list[str]:
    """The payment ids of the ledger's payment entries, once per entry."""
    found = []
    for artisan_id in artisans:
        cursor = None
        while True:
            params = {"cause": "payment", "artisan_id": artisan_id, "limit": 100}
            if cursor:
                params["starting_after"] = cursor
            page = operator.call("GET", "accounts", "/v1/journal-entries", params=params).json()
            found += [entry["cause_id"] for entry in page["data"]]
            if not page["has_more"]:
                break
            cursor = page["next_cursor"]
    return found


def integrity(operator: Client) -> dict:
    return operator.call("GET", "accounts", "/v1/ledger/integrity").json()


def kill_the_broker_for_a_while(stack: Stack, during) -> None:
    """SIGKILL the broker (it loses everything), run ``during`` while it is down, start it again."""
    killed_at = time.monotonic()
    stack.stop("broker", sig=signal.SIGKILL)
    during()
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - killed_at)))
    stack.start("broker")


def assert_every_payment_in_the_ledger_once(stack: Stack, operator: Client, payments: Payments) -> None:
    expected = sorted(payments.succeeded)
    wait_until(
        lambda: sorted(set(posted_payments(operator, payments.artisans)) & set(expected)) == expected,
        timeout=180,
        message="every succeeded payment in the ledger",
    )
    posted = posted_payments(operator, payments.artisans)
    assert sorted(posted) == sorted(set(posted)), "a payment was posted twice"
    # Any gap the completeness check opened meanwhile is resolved once the payments arrived.
    wait_until(lambda: integrity(operator)["ok"], timeout=30, message="the integrity report is ok")
    assert_ledger_sound(stack)


def test_payments_acknowledged_while_accounts_lagged_reach_the_ledger_after_the_broker_lost_them(
    stack, marketplace, operator, artisans
):
    payments = Payments(stack, marketplace, artisans)
    stack.stop("accounts_consumer")  # lagging: what the broker acknowledged waits in the broker
    payments.pay(8)
    wait_until(lambda: outbox_backlog(stack, "payments") == 0, timeout=60, message="the relay published them")

    kill_the_broker_for_a_while(stack, during=lambda: payments.pay(3))
    stack.start("accounts_consumer")
    payments.pay(3)

    assert_every_payment_in_the_ledger_once(stack, operator, payments)
    assert "the broker lost published events; publishing them again" in stack.log("payments_relay")


def test_a_running_consumer_goes_back_for_what_a_restarted_broker_holds_again(
    stack, marketplace, operator, artisans
):
    payments = Payments(stack, marketplace, artisans)
    payments.pay(6)
    wait_until(
        lambda: set(payments.succeeded) <= set(posted_payments(operator, artisans)),
        timeout=60,
        message="the first payments posted",
    )

    kill_the_broker_for_a_while(stack, during=lambda: payments.pay(3))
    payments.pay(3)

    assert_every_payment_in_the_ledger_once(stack, operator, payments)
    # The API's readiness follows the broker back.
    stack.wait_ready(60)


def open_gap_cases(operator: Client) -> set[str]:
    """The payments the completeness check found missing from the ledger (open cases)."""
    page = operator.call(
        "GET", "accounts", "/v1/ledger/cases", params={"status": "open", "limit": 100}
    ).json()
    return {case["cause_id"] for case in page["data"] if case["kind"] == "payment_not_in_ledger"}


def test_a_loss_nothing_repairs_is_a_case_and_a_failed_integrity_report_until_it_is_replayed(
    stack, marketplace, operator, artisans
):
    """The second line of defence alone: the payments relay's own repair is off, so what the
    broker lost stays lost until someone acts; accounts' completeness check makes sure someone
    knows."""
    stack.stop("payments_relay")
    stack.start("payments_relay", RELAY_LOSS_CHECK_SECONDS="0")
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()
    payments = Payments(stack, marketplace, artisans)
    stack.stop("accounts_consumer")
    payments.pay(3)
    wait_until(lambda: outbox_backlog(stack, "payments") == 0, timeout=60, message="the relay published them")
    kill_the_broker_for_a_while(stack, during=lambda: None)
    stack.start("accounts_consumer")

    lost = set(payments.succeeded)
    wait_until(lambda: open_gap_cases(operator) >= lost, timeout=120, message="a case per payment lost")
    report = integrity(operator)
    assert report["ok"] is False
    assert {
        d["payment_id"] for d in report["differences"] if d["check"] == "succeeded_payment_in_ledger"
    } == lost
    assert gauge(stack, "accounts", "hirfa_ledger_payments_not_in_ledger") == len(lost)

    # What the case asks an operator to do: replay the payments' events.
    subprocess.run(
        [str(Path(sys.executable).parent / "hirfa"), "payments", "events", "replay", "--since", since],
        cwd=ROOT,
        env=stack.env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert_every_payment_in_the_ledger_once(stack, operator, payments)
    assert open_gap_cases(operator) == set()
    stack.stop("payments_relay")
    stack.start("payments_relay")
