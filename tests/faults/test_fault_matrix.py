"""The fault matrix: money driven through the public APIs of the running processes while one thing
breaks in the middle of the burst. After each fault heals, the suite reads everything back and
checks, for that fault's artisans: every payment the API calls ``succeeded`` is in the ledger exactly
once and nothing else is; the ledger's integrity check passes; each artisan holds the net of their
payments less their payouts; nothing is left processing, pending at the bank or parked; and no
request was answered 500 (503 while something is away is fine). The table at the end of the run
says how each fault went and how long its money took to settle.

The faults share one stack (``conftest.py``); each uses fresh artisans, so one fault's money never
blurs another's. The broker fault comes last: the embedded broker forgets everything on restart.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import requests

from shared.banking import make_rib
from tests.e2e.test_kyc_path import Client, verify_phone
from tests.e2e.test_payments_path import card_token
from tests.faults.harness import (
    MARKETPLACE,
    OPERATOR,
    REPORTS,
    Answers,
    Api,
    Burst,
    FaultReport,
    HeldLock,
    report_table,
    settle,
    stop_while_waiting,
)
from tests.support import artisan_body, wait_until

pytestmark = pytest.mark.e2e

ARTISANS_PER_FAULT = 4
# The newest callbacks of each partner the callback fault replays.
REPLAYED_PER_PARTNER = 30
BROKER_OUTAGE_SECONDS = 8
HOLDER = "Amina Tazi"


@pytest.fixture(scope="module")
def card(fault_stack) -> str:
    """A card token made once (the sandbox's tokens never expire): taking one needs the gateway,
    which one fault takes away."""
    return card_token(fault_stack, "4242424242424242")


def new_artisans(stack, count: int = ARTISANS_PER_FAULT) -> list[str]:
    """Artisans at tier 1 with a bank account of their own, known to payments and to accounts."""
    marketplace = Client(stack, *MARKETPLACE)
    operator = Client(stack, *OPERATOR)
    ids = []
    for _ in range(count):
        registered = marketplace.call(
            "POST", "onboarding", "/v1/artisans", idempotent=True, json=artisan_body(full_name=HOLDER)
        )
        assert registered.status_code == 201, registered.text
        artisan = registered.json()
        verify_phone(stack, marketplace, artisan)
        # An account number of its own (the bank sandbox verifies the holder of any other as a match).
        rib = make_rib("001", "810", f"{random.randint(10**14, 10**15 - 1)}7")
        linked = marketplace.call(
            "POST",
            "onboarding",
            f"/v1/artisans/{artisan['id']}/bank-accounts",
            idempotent=True,
            json={"mode": "link", "rib": rib, "holder_name": HOLDER},
        )
        assert linked.status_code == 201, linked.text
        ids.append(artisan["id"])

    def known_everywhere(artisan_id: str) -> bool:
        payee = marketplace.call("GET", "payments", f"/v1/payees/{artisan_id}")
        if not (payee.ok and payee.json()["kyc_tier"] == 1):
            return False
        # A payout of one centime from an empty balance: refused for lack of funds only once
        # accounts knows the tier and the bank account (nothing is created either way).
        probe = operator.call(
            "POST",
            "accounts",
            "/v1/payouts",
            idempotent=True,
            json={"artisan_id": artisan_id, "amount": 1, "currency": "MAD"},
        )
        return probe.status_code == 409 and probe.json()["code"] == "insufficient_funds"

    for artisan_id in ids:
        wait_until(lambda a=artisan_id: known_everywhere(a), timeout=60, message="artisan known everywhere")
    return ids


class Fault:
    """One fault's run: its clients, its burst, and its line in the table."""

    def __init__(self, stack, card: str, number: int, name: str) -> None:
        self.stack = stack
        self.number = number
        self.name = name
        self.answers = Answers()
        started = time.monotonic()
        self.marketplace = Api(stack, MARKETPLACE, self.answers)
        self.operator = Api(stack, OPERATOR, self.answers)
        self.burst = Burst(self.marketplace, self.operator, new_artisans(stack), card)
        print(f"fault {number}: artisans ready in {time.monotonic() - started:.1f}s")
        self.started = time.monotonic()
        self.notes: list[str] = []
        self.evidence = ""
        self.healed_at = 0.0

    def run_on_after_healing(self) -> None:
        """Called as the fault heals. Money keeps moving: more payments, and a payout."""
        self.healed_at = time.monotonic()
        payouts = len(self.burst.payouts)
        self.burst.wait_for_payments(6)
        wait_until(lambda: len(self.burst.payouts) > payouts, timeout=60, message="a payout after healing")

    def check(self) -> FaultReport:
        """After the burst: wait for the money to settle, report, and fail on anything wrong."""
        print(f"fault {self.number}: burst and fault took {time.monotonic() - self.started:.1f}s")
        self.stack.wait_services_ready(60)
        settlement, _ = settle(self.operator, self.marketplace, self.burst)
        settled_at = time.monotonic()
        report = FaultReport(
            self.number,
            self.name,
            settlement,
            self.answers,
            settle_seconds=settled_at - self.healed_at,
            drain_seconds=settled_at - self.burst.stopped_at,
            notes=self.notes,
            evidence=self.evidence,
        )
        REPORTS.append(report)
        print("\n".join(report_table([report])))
        assert self.burst.payments, "the burst made no payment"
        assert report.passed, "\n".join(report_table([report]))
        return report


def test_2_accounts_consumer_sigkilled_mid_batch(fault_stack, card):
    fault = Fault(fault_stack, card, 2, "accounts consumer SIGKILLed mid-batch")
    lock = HeldLock(fault_stack.database_urls["accounts"])
    try:
        with fault.burst as burst:
            burst.wait_for_payments(6)
            # A payment's posting adds its pending hold: with that table locked the consumer stops
            # inside its batch's transaction, some of the batch applied, and dies there.
            stop_while_waiting(
                lock,
                "pending_holds",
                "EXCLUSIVE",
                "accounts_consumer",
                lambda: fault_stack.kill("accounts_consumer"),
            )
            fault.evidence = "killed inside a batch: its transaction open, waiting on pending_holds"
            burst.run_for(2)
            fault_stack.start("accounts_consumer")
            fault.run_on_after_healing()
    finally:
        lock.dispose()
    fault.check()


def test_3_relay_sigkilled(fault_stack, card):
    fault = Fault(fault_stack, card, 3, "payments relay SIGKILLed after publishing")
    lock = HeldLock(fault_stack.database_urls["payments"])
    try:
        with fault.burst as burst:
            burst.wait_for_payments(6)
            # SHARE lets the relay take its rows (FOR UPDATE) and publish them, then holds it at
            # marking them sent: it dies with the broker holding events its outbox says are unsent.
            stop_while_waiting(
                lock, "outbox", "SHARE", "payments_relay", lambda: fault_stack.kill("payments_relay")
            )
            fault.evidence = "killed after publishing a batch, waiting to mark it sent"
            burst.run_for(2)
            fault_stack.start("payments_relay")
            fault.run_on_after_healing()
    finally:
        lock.dispose()
    fault.check()


def test_4_gateway_down_during_confirms(fault_stack, card):
    fault = Fault(fault_stack, card, 4, "gateway sandbox down during confirms")
    with fault.burst as burst:
        burst.wait_for_payments(6)
        # Frozen: connections are taken and never answered, so a confirm cannot know whether the
        # card was charged; the gateway works through them once it is back.
        fault_stack.suspend("m2t_sandbox")
        try:
            burst.run_for(6)
        finally:
            fault_stack.resume("m2t_sandbox")
        fault.run_on_after_healing()
    unknown = sum(payment.confirmed_status == "processing" for payment in fault.burst.payments)
    fault.evidence = f"{unknown} confirms answered processing (outcome unknown), settled by recovery"
    if not unknown:
        fault.notes.append("the outage caught no confirm")
    fault.check()


def test_5_bank_down_during_payouts(fault_stack, card):
    fault = Fault(fault_stack, card, 5, "bank sandbox down during payouts")
    with fault.burst as burst:
        wait_until(lambda: len(burst.payouts) >= 2, timeout=60, message="payouts before the outage")
        before = len(burst.payouts)
        fault_stack.suspend("bank_sandbox")
        try:
            wait_until(
                lambda: len(burst.payouts) >= before + 2, timeout=60, message="payouts during the outage"
            )
        finally:
            fault_stack.resume("bank_sandbox")
        fault.run_on_after_healing()
    waiting = sum(payout.answered_status == "pending" for payout in fault.burst.payouts)
    fault.evidence = f"{waiting} payouts answered pending (not handed to the bank), paid by the worker"
    if not waiting:
        fault.notes.append("the outage caught no payout")
    fault.check()


def test_6_payments_api_sigkilled_mid_request(fault_stack, card):
    fault = Fault(fault_stack, card, 6, "payments API SIGKILLed mid-request")
    lock = HeldLock(fault_stack.database_urls["payments"])
    killed_at = 0.0

    def kill_worker() -> None:
        nonlocal killed_at
        # The worker only: its master stays and starts a new one, as after an out-of-memory kill.
        os.kill(fault_stack.api_worker("payments"), signal.SIGKILL)
        killed_at = time.monotonic()

    def cut_off() -> int:
        return fault.answers.connection_errors

    try:
        with fault.burst as burst:
            burst.wait_for_payments(6)
            # Requests that create or confirm a payment wait on the table, their Idempotency-Keys
            # claimed; the worker serving them dies there. Clients retry with their keys.
            errors_before = cut_off()
            stop_while_waiting(lock, "payments", "SHARE", "payments", kill_worker, waiters=2)
            fault.run_on_after_healing()
            cut = cut_off() - errors_before
    finally:
        lock.dispose()
    # Once the worker that held them is dead, nobody is working on those keys: a retry is applied
    # or replayed at once, never told the key is still in progress.
    fault.evidence = f"{cut} requests cut off by the kill, retried with their keys"
    if cut < 2:
        fault.notes.append("the kill cut off fewer than the two requests waiting in it")
    stale = [what for at, what in fault.answers.in_progress_after if at > killed_at + 1]
    if stale:
        fault.notes.append(
            f"{len(stale)} retries told idempotency_key_in_progress after the crash: {stale[:3]}"
        )
    fault.check()


def test_8_callbacks_replayed_duplicated_and_out_of_order(fault_stack, card):
    fault = Fault(fault_stack, card, 8, "gateway and bank callbacks replayed out of order")
    with fault.burst as burst:
        began = time.monotonic()
        wait_until(lambda: len(burst.payouts) >= 3, timeout=60, message="payouts to call back about")
        # Signed bodies the gateway and the bank sent during this fault, each sent again twice, newest
        # first (so a snapshot older than what the service knows arrives after it), in the middle
        # of the burst.
        gateway_calls = fault_stack.taps["payments"].since(began)[-REPLAYED_PER_PARTNER:]
        bank_calls = fault_stack.taps["accounts"].since(began)[-REPLAYED_PER_PARTNER:]
        assert gateway_calls and bank_calls, (len(gateway_calls), len(bank_calls))
        for capture in sorted(gateway_calls + bank_calls, key=lambda c: c.at, reverse=True) * 2:
            service = "payments" if capture.path.startswith("/v1/gateways/") else "accounts"
            answer = requests.post(
                fault_stack.urls[service] + capture.path,
                data=capture.body,
                headers=capture.headers,
                timeout=15,
            )
            fault.answers.record(f"replay {capture.path}", answer)
            if answer.status_code != 200:
                fault.answers.record_unexpected(f"replay {capture.path}", answer)
        fault.evidence = (
            f"{len(gateway_calls)} gateway and {len(bank_calls)} bank callbacks replayed twice, newest first"
        )
        fault.run_on_after_healing()
    fault.check()


def test_7_database_restarted(fault_stack, card, own_postgres):
    fault = Fault(fault_stack, card, 7, "PostgreSQL restarted")
    with fault.burst as burst:
        burst.wait_for_payments(6)
        own_postgres.restart()
        fault.run_on_after_healing()
    fault.evidence = (
        f"{fault.answers.count_503} answers 503 and {fault.answers.connection_errors} connections lost "
        "while it restarted"
    )
    fault.check()


def test_1_broker_killed_and_restarted(fault_stack, card):
    fault = Fault(fault_stack, card, 1, "broker killed and restarted")
    with fault.burst as burst:
        burst.wait_for_payments(6)
        # The accounts consumer lags: events the broker acknowledged (the relay marked them sent)
        # wait there unread when the broker dies, and the embedded broker forgets them.
        fault_stack.suspend("accounts_consumer")
        try:
            burst.run_for(2)
            unread = len(burst.payments)
            fault_stack.kill("broker")
        finally:
            fault_stack.resume("accounts_consumer")
        burst.run_for(BROKER_OUTAGE_SECONDS)
        during = len(burst.payments) - unread
        fault_stack.start("broker")
        fault.run_on_after_healing()
    # Nothing is restarted by hand: the relays and consumers find their way back by themselves.
    fault.evidence = (
        f"the accounts consumer lagging when the broker died; {during} payments created in the "
        f"{BROKER_OUTAGE_SECONDS} s outage; nothing restarted by hand"
    )
    fault.check()
