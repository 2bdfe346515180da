"""Payouts through accounts' HTTP API: the ledger entries of each state, refusals, the bank's signed
callbacks (duplicate, forged, out of order), recovery from a bank outage and lost callbacks,
idempotency, visibility, automatic payouts, and concurrent requests that must never overdraw.

The artisan is funded the way production funds them: payments' events delivered through the real
accounts consumer, then the release of the hold; their bank account arrives as onboarding's
``bank_account.linked`` event. The bank is ``FakeTransferBank`` (in memory, controlled by each test)
except in the last tests, which run the bank sandbox and accounts as real HTTP servers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
import uuid

import pytest
import requests
import sqlalchemy as sa

from sandbox.bank.app import create_app as create_bank_sandbox_app
from sandbox.bank.app import stop_background_work
from sandbox.bank.config import SandboxBankConfig
from services.accounts.adapters.orm import IdempotencyKey, JournalEntry, LedgerCase, OutboxMessage, Payout
from services.accounts.app import create_app as create_accounts_app
from services.accounts.domain.payouts import FAILURE_CODES, schedule_window
from services.accounts.service_layer.bank_transfers import return_waiting_payout_funds, sync_payouts
from services.accounts.service_layer.money_events import release_due_holds
from services.accounts.service_layer.payout_schedules import run_payout_schedules
from shared.auth.scopes import Role
from shared.banking import make_rib
from shared.config import SANDBOX_BANK_CALLBACK_SECRET
from shared.events import Event, make_event
from shared.ids import new_id
from shared.partner_ports import PartnerRegistry
from tests.fakes import FakeTransferBank
from tests.integration.conftest import MARKETPLACE, OTHER_MARKETPLACE
from tests.integration.test_bank_accounts_api import LocalServer
from tests.integration.test_ledger_postings import assert_ledger_sound, lines_of
from tests.ledger_support import (
    RIB,
    LedgerDriver,
    bank_account_linked,
    callback_body,
    payment_succeeded,
    signed,
    tier_changed,
)
from tests.support import wait_until

PARTNER_BANK = "banque_populaire"
CALLBACKS_URL = f"/v1/banks/{PARTNER_BANK}/callbacks"
OPERATOR = "cli_test_operator"
BANK_CLIENT = "cli_test_bank"
OTHER_RIB = make_rib("011", "780", "0000009876543210")
IN_TRANSIT = ("platform", "platform", "payouts_in_transit")
SOURCE_BANK = ("platform", "platform", "bank:145")


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def bank() -> FakeTransferBank:
    return FakeTransferBank(SANDBOX_BANK_CALLBACK_SECRET)


@pytest.fixture
def accounts_bank_partners(bank) -> PartnerRegistry:
    return PartnerRegistry({PARTNER_BANK: bank})


@pytest.fixture
def app(accounts_app):
    return accounts_app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ledger(app) -> LedgerDriver:
    return LedgerDriver(app)


@pytest.fixture
def auth(issue_token):
    """auth(role, client_id) -> headers with a bearer token, and a fresh Idempotency-Key."""

    def headers(
        role: Role = Role.OPERATOR,
        client_id: str = OPERATOR,
        idempotency_key: str | None = None,
        bank_code: str | None = None,
    ) -> dict:
        return {
            "Authorization": "Bearer " + issue_token(role, client_id=client_id, bank_code=bank_code),
            "Idempotency-Key": idempotency_key or uuid.uuid4().hex,
        }

    return headers


def kyc_rejected(artisan_id: str, version: int) -> Event:
    return make_event(
        "onboarding.artisan.kyc_rejected",
        subject=artisan_id,
        data={
            "artisan_id": artisan_id,
            "review_id": new_id("rev"),
            "review_kind": "tier_upgrade",
            "reason_code": "document_forged",
            "kyc_tier": 3,
            "kyc_status": "rejected",
            "kyc_version": version,
            "rejected_at": dt.datetime.now(dt.UTC).isoformat(),
        },
    )


def fund(ledger: LedgerDriver, artisan_id: str, amount: int) -> None:
    """A payment for ``amount`` (no commission), released to the artisan's available balance."""
    ledger.deliver(payment_succeeded(artisan_id, amount, 0))
    release_due_holds(ledger.context.uow_factory, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=30))


def ready_artisan(ledger: LedgerDriver, available: int = 10_000, *, rib: str | None = RIB) -> str:
    """A tier-3 artisan with ``available`` to pay out and (unless ``rib`` is None) a default bank account."""
    artisan_id = ledger.artisan_at_tier(3)
    if available:
        fund(ledger, artisan_id, available)
    if rib is not None:
        ledger.deliver(bank_account_linked(artisan_id, rib))
    return artisan_id


def request_payout(client, headers: dict, artisan_id: str, amount: int, **fields):
    body = {"artisan_id": artisan_id, "amount": amount, "currency": "MAD", **fields}
    return client.post("/v1/payouts", json=body, headers=headers)


def available(ledger: LedgerDriver, artisan_id: str) -> int:
    return ledger.shown("artisan", artisan_id, "available")


def payout_entries(ledger: LedgerDriver, payout_id: str) -> dict[str, dict[tuple[str, str], int]]:
    """The payout's journal entries by step (created, paid, failed), each as its lines."""
    with ledger.context.session_factory() as session:
        found = session.scalars(sa.select(JournalEntry).where(JournalEntry.cause_id == payout_id)).all()
    return {entry.posting_key.rsplit(":", 1)[-1]: lines_of(ledger, entry.id) for entry in found}


def outbox(app, prefix: str = "accounts.payout.") -> list[dict]:
    with app.extensions["hirfa"].session_factory() as session:
        rows = session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.seq)).all()
    return [json.loads(row.payload) for row in rows if row.event_type.startswith(prefix)]


def count(app, model, *where) -> int:
    with app.extensions["hirfa"].session_factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def post_callback(client, body: bytes, headers: dict | None = None):
    return client.post(CALLBACKS_URL, data=body, headers=signed(body) if headers is None else headers)


def sync(app, *, later: dt.timedelta = dt.timedelta(0)) -> dict:
    context = app.extensions["hirfa"]
    return sync_payouts(context.uow_factory, context.payouts, now=dt.datetime.now(dt.UTC) + later)


@pytest.fixture
def in_transit_payout(app, client, auth, ledger, bank):
    """A payout of 4,000 from an artisan holding 10,000, accepted by the bank: (artisan id, payout)."""
    artisan_id = ready_artisan(ledger, 10_000)
    response = request_payout(client, auth(), artisan_id, 4_000)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "in_transit"
    return artisan_id, response.json


# --- creation ------------------------------------------------------------------------------------


def test_a_payout_moves_available_funds_to_in_transit_and_goes_to_the_bank(app, client, auth, ledger, bank):
    artisan_id = ready_artisan(ledger, 10_000)
    response = request_payout(client, auth(), artisan_id, 4_000, description="November sales")

    assert response.status_code == 201, response.json
    payout = response.json
    assert response.headers["Location"] == f"/v1/payouts/{payout['id']}"
    assert payout["id"].startswith("po_")
    assert (payout["object"], payout["artisan_id"], payout["status"]) == ("payout", artisan_id, "in_transit")
    assert payout["amount"] == {"amount": 4_000, "currency": "MAD"}
    assert (payout["bank_code"], payout["rib_last4"], payout["source"]) == ("007", RIB[-4:], "api")
    assert payout["description"] == "November sales" and payout["failure_code"] is None
    assert "rib" not in payout

    assert payout_entries(ledger, payout["id"]) == {
        "created": {("artisan", "available"): 4_000, ("platform", "payouts_in_transit"): -4_000}
    }
    assert available(ledger, artisan_id) == 6_000
    assert ledger.shown(*IN_TRANSIT) == 4_000

    [sent] = bank.requests
    assert (sent.reference, sent.rib, sent.amount, sent.currency) == (payout["id"], RIB, 4_000, "MAD")
    assert sent.callback_url.endswith(CALLBACKS_URL)

    events = outbox(app)
    assert [event["type"] for event in events] == ["accounts.payout.created", "accounts.payout.in_transit"]
    created = events[0]["data"]
    assert (created["payout_id"], created["requested_by"]) == (payout["id"], OPERATOR)
    assert created["rib_last4"] == RIB[-4:]
    # The full RIB never leaves in a payout event.
    assert all(RIB not in json.dumps(event) for event in events)
    assert_ledger_sound(ledger)


def test_an_amount_given_as_a_money_object_is_accepted(client, auth, ledger):
    artisan_id = ready_artisan(ledger, 10_000)
    body = {"artisan_id": artisan_id, "amount": {"amount": 2_500, "currency": "MAD"}}
    response = client.post("/v1/payouts", json=body, headers=auth())
    assert response.status_code == 201, response.json
    assert response.json["amount"] == {"amount": 2_500, "currency": "MAD"}


def test_a_payout_can_go_to_a_named_account_of_the_artisan(client, auth, ledger, bank):
    artisan_id = ready_artisan(ledger, 10_000)
    second = new_id("ba")
    ledger.deliver(bank_account_linked(artisan_id, OTHER_RIB, is_default=False, bank_account_id=second))
    response = request_payout(client, auth(), artisan_id, 1_000, bank_account_id=second)
    assert response.status_code == 201, response.json
    assert (response.json["bank_account_id"], response.json["bank_code"]) == (second, "011")
    assert bank.requests[-1].rib == OTHER_RIB


# --- refusals ------------------------------------------------------------------------------------


def assert_nothing_posted(app, ledger, artisan_id: str, available_before: int) -> None:
    assert count(app, Payout) == 0
    assert count(app, JournalEntry, JournalEntry.cause == "payout") == 0
    assert outbox(app) == []
    assert available(ledger, artisan_id) == available_before


def test_more_than_the_available_balance_is_insufficient_funds(app, client, auth, ledger, bank):
    artisan_id = ready_artisan(ledger, 10_000)
    response = request_payout(client, auth(), artisan_id, 10_001)
    assert response.status_code == 409
    assert (response.json["code"], response.json["param"]) == ("insufficient_funds", "amount")
    assert response.json["available"] == {"amount": 10_000, "currency": "MAD"}
    assert_nothing_posted(app, ledger, artisan_id, 10_000)
    assert bank.requests == []


def test_pending_funds_cannot_be_paid_out(app, client, auth, ledger):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 0))  # still inside the hold period
    ledger.deliver(bank_account_linked(artisan_id))
    response = request_payout(client, auth(), artisan_id, 1)
    assert (response.status_code, response.json["code"]) == (409, "insufficient_funds")
    assert_nothing_posted(app, ledger, artisan_id, 0)


def test_an_artisan_without_a_bank_account_has_no_payout_account(app, client, auth, ledger):
    artisan_id = ready_artisan(ledger, 10_000, rib=None)
    response = request_payout(client, auth(), artisan_id, 1_000)
    assert (response.status_code, response.json["code"]) == (409, "no_payout_account")
    assert_nothing_posted(app, ledger, artisan_id, 10_000)


def test_another_artisans_bank_account_is_no_payout_account(app, client, auth, ledger):
    artisan_id = ready_artisan(ledger, 10_000)
    other_account = new_id("ba")
    ledger.deliver(bank_account_linked(ledger.artisan_at_tier(3), OTHER_RIB, bank_account_id=other_account))
    for bank_account_id in (other_account, new_id("ba")):
        response = request_payout(client, auth(), artisan_id, 1_000, bank_account_id=bank_account_id)
        assert (response.status_code, response.json["code"], response.json["param"]) == (
            409,
            "no_payout_account",
            "bank_account_id",
        )
    assert_nothing_posted(app, ledger, artisan_id, 10_000)


@pytest.mark.parametrize("news", ["tier_lowered_to_0", "kyc_rejected"])
def test_an_artisan_at_tier_0_or_rejected_may_not_be_paid_out(app, client, auth, ledger, news):
    artisan_id = ready_artisan(ledger, 10_000)
    if news == "tier_lowered_to_0":
        ledger.deliver(tier_changed(artisan_id, 0, version=2, previous=3))
    else:
        ledger.deliver(kyc_rejected(artisan_id, version=1))
    response = request_payout(client, auth(), artisan_id, 1_000)
    assert (response.status_code, response.json["code"]) == (409, "payouts_not_allowed")
    assert_nothing_posted(app, ledger, artisan_id, 10_000)


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"amount": 0}, "validation_error", "amount"),
        ({"amount": -500}, "validation_error", "amount"),
        ({"amount": 10.5}, "validation_error", "amount"),
        ({"amount": "1000"}, "validation_error", "amount"),
        ({"currency": "XYZ"}, "validation_error", "currency"),
        ({"currency": "EUR"}, "unsupported_currency", "currency"),
        (
            {"amount": {"amount": 1_000, "currency": "EUR"}, "currency": None},
            "unsupported_currency",
            "currency",
        ),
        ({"amount": {"amount": 1_000, "currency": "MAD"}, "currency": "EUR"}, "validation_error", "currency"),
    ],
)
def test_an_invalid_amount_or_currency_is_refused(app, client, auth, ledger, fields, code, param):
    artisan_id = ready_artisan(ledger, 10_000)
    body = {"artisan_id": artisan_id, "amount": 1_000, "currency": "MAD", **fields}
    body = {name: value for name, value in body.items() if value is not None}
    response = client.post("/v1/payouts", json=body, headers=auth())
    assert response.status_code == 422, response.json
    assert (response.json["code"], response.json["param"]) == (code, param)
    assert_nothing_posted(app, ledger, artisan_id, 10_000)


# --- the bank's answers --------------------------------------------------------------------------


def test_a_paid_callback_clears_in_transit_and_credits_the_bank_once(
    app, client, auth, ledger, bank, in_transit_payout
):
    artisan_id, payout = in_transit_payout
    body = callback_body(bank.settle(payout["id"]))

    response = post_callback(client, body)
    assert response.status_code == 200, response.json
    assert response.json == {"received": True, "applied": True, "status": "paid"}
    assert payout_entries(ledger, payout["id"])["paid"] == {
        ("platform", "payouts_in_transit"): 4_000,
        ("platform", "bank:145"): -4_000,
    }
    assert ledger.shown(*IN_TRANSIT) == 0
    assert ledger.shown(*SOURCE_BANK) == -4_000  # the client-funds account at the bank went down
    assert available(ledger, artisan_id) == 6_000

    # The sandbox delivers every callback twice: the second changes nothing.
    again = post_callback(client, body)
    assert again.json == {"received": True, "applied": False, "status": "paid"}
    assert len(payout_entries(ledger, payout["id"])) == 2
    assert [e["type"] for e in outbox(app)].count("accounts.payout.paid") == 1
    shown = client.get(f"/v1/payouts/{payout['id']}", headers=auth())
    assert (shown.json["status"], shown.json["paid_at"] is not None) == ("paid", True)
    assert shown.json["bank_reference"] == bank.transfer_for(payout["id"]).partner_reference
    assert_ledger_sound(ledger)


@pytest.mark.parametrize("failure_code", FAILURE_CODES)
def test_a_failed_payout_returns_the_funds_to_available(
    app, client, ledger, bank, in_transit_payout, failure_code
):
    artisan_id, payout = in_transit_payout
    response = post_callback(client, callback_body(bank.settle(payout["id"], failure_code=failure_code)))
    assert response.json == {"received": True, "applied": True, "status": "failed"}
    assert payout_entries(ledger, payout["id"])["failed"] == {
        ("platform", "payouts_in_transit"): 4_000,
        ("artisan", "available"): -4_000,
    }
    assert (available(ledger, artisan_id), ledger.shown(*IN_TRANSIT)) == (10_000, 0)
    [failed] = [e["data"] for e in outbox(app) if e["type"] == "accounts.payout.failed"]
    assert (failed["failure_code"], failed["funds_returned"]) == (failure_code, True)
    assert_ledger_sound(ledger)


def _wrong_secret(body: bytes) -> tuple[bytes, dict]:
    return body, signed(body, secret="not-the-bank")


def _tampered_body(body: bytes) -> tuple[bytes, dict]:
    return body.replace(b'"paid"', b'"failed"'), signed(body)


def _no_signature(body: bytes) -> tuple[bytes, dict]:
    return body, {"Content-Type": "application/json"}


def _replayed_from_long_ago(body: bytes) -> tuple[bytes, dict]:
    return body, signed(body, timestamp=int(time.time()) - 3600)


@pytest.mark.parametrize("forge", [_wrong_secret, _tampered_body, _no_signature, _replayed_from_long_ago])
def test_a_callback_without_a_valid_signature_is_refused_and_changes_nothing(
    app, client, ledger, bank, in_transit_payout, forge
):
    artisan_id, payout = in_transit_payout
    body, headers = forge(callback_body(bank.settle(payout["id"])))
    response = post_callback(client, body, headers=headers)
    assert response.status_code == 401
    assert response.json["code"] == "invalid_signature"
    assert set(payout_entries(ledger, payout["id"])) == {"created"}
    assert ledger.shown(*IN_TRANSIT) == 4_000
    with app.extensions["hirfa"].session_factory() as session:
        assert session.get(Payout, payout["id"]).status == "in_transit"


def test_a_late_or_contradicting_answer_never_undoes_a_paid_payout(client, ledger, bank, in_transit_payout):
    artisan_id, payout = in_transit_payout
    paid = bank.settle(payout["id"])
    assert post_callback(client, callback_body(paid)).json["status"] == "paid"

    late_pending = post_callback(client, callback_body(paid, status="pending"))
    failed = dataclasses.replace(paid, status="failed", failure_code="account_closed")
    contradicting = post_callback(client, callback_body(failed))
    for response in (late_pending, contradicting):
        assert response.json == {"received": True, "applied": False, "status": "paid"}
    assert set(payout_entries(ledger, payout["id"])) == {"created", "paid"}
    assert (available(ledger, artisan_id), ledger.shown(*IN_TRANSIT)) == (6_000, 0)


def test_a_transfer_whose_reply_was_lost_is_settled_by_its_callback(app, client, auth, ledger, bank):
    """The bank took the transfer but our request timed out: the payout is still pending when the
    callback comes, and goes through in_transit to paid."""
    artisan_id = ready_artisan(ledger, 10_000)
    bank.lose_replies = True
    payout = request_payout(client, auth(), artisan_id, 3_000).json
    assert payout["status"] == "pending"

    response = post_callback(client, callback_body(bank.settle(payout["id"])))
    assert response.json == {"received": True, "applied": True, "status": "paid"}
    types = [e["type"] for e in outbox(app)]
    assert types == ["accounts.payout.created", "accounts.payout.in_transit", "accounts.payout.paid"]
    assert sync(app)["submitted"] == 0  # settled: nothing left to submit
    assert_ledger_sound(ledger)


@pytest.mark.parametrize("change", ["unknown_reference", "other_bank_transfer", "other_amount"])
def test_a_callback_that_is_not_about_one_of_our_payouts_is_refused(
    app, client, bank, in_transit_payout, change
):
    _, payout = in_transit_payout
    paid = bank.settle(payout["id"])
    wrong = {
        "unknown_reference": dataclasses.replace(paid, reference=new_id("po")),
        "other_bank_transfer": dataclasses.replace(paid, partner_reference="trf_someone_else"),
        "other_amount": dataclasses.replace(paid, amount=999_999),
    }[change]
    response = post_callback(client, callback_body(wrong))
    assert (response.status_code, response.json["code"]) == (404, "resource_not_found")
    with app.extensions["hirfa"].session_factory() as session:
        assert session.get(Payout, payout["id"]).status == "in_transit"


def test_a_signed_callback_that_is_not_a_transfer_is_a_bad_request(client, in_transit_payout):
    opening = {"id": "evt_x", "type": "account_opening.opened", "data": {"opening_id": "aop_1"}}
    body = json.dumps(opening).encode()
    response = post_callback(client, body)
    assert (response.status_code, response.json["code"]) == (400, "malformed_callback")


def test_callbacks_for_an_unknown_bank_are_404(client, in_transit_payout, bank):
    _, payout = in_transit_payout
    body = callback_body(bank.settle(payout["id"]))
    response = client.post("/v1/banks/some_bank/callbacks", data=body, headers=signed(body))
    assert response.status_code == 404


# --- outages and lost callbacks ----------------------------------------------------------------


def test_a_payout_made_while_the_bank_is_down_stays_pending_until_the_worker_submits_it(
    app, client, auth, ledger, bank
):
    artisan_id = ready_artisan(ledger, 10_000)
    bank.down = True
    response = request_payout(client, auth(), artisan_id, 2_500)
    assert response.status_code == 201, response.json
    payout = response.json
    assert (payout["status"], payout["submitted_at"], payout["bank_reference"]) == ("pending", None, None)
    # The funds are reserved at once: the entry was committed before the bank was called.
    assert set(payout_entries(ledger, payout["id"])) == {"created"}
    assert available(ledger, artisan_id) == 7_500

    assert sync(app) == {"submitted": 0, "polled": 0, "settled": 0}  # still down
    bank.down = False
    assert sync(app)["submitted"] == 1
    assert client.get(f"/v1/payouts/{payout['id']}", headers=auth()).json["status"] == "in_transit"
    assert sync(app)["submitted"] == 0
    assert [request.reference for request in bank.requests] == [payout["id"]]

    post_callback(client, callback_body(bank.settle(payout["id"])))
    assert client.get(f"/v1/payouts/{payout['id']}", headers=auth()).json["status"] == "paid"
    assert_ledger_sound(ledger)


def test_a_payout_whose_callback_never_comes_is_settled_by_polling(
    app, client, auth, ledger, bank, in_transit_payout
):
    artisan_id, payout = in_transit_payout
    bank.settle(payout["id"], failure_code="name_mismatch")  # …and the callback is lost

    assert sync(app)["polled"] == 0  # not overdue yet (payout_poll_after_seconds)
    assert sync(app, later=dt.timedelta(minutes=5)) == {"submitted": 0, "polled": 1, "settled": 1}
    shown = client.get(f"/v1/payouts/{payout['id']}", headers=auth()).json
    assert (shown["status"], shown["failure_code"]) == ("failed", "name_mismatch")
    assert available(ledger, artisan_id) == 10_000
    assert sync(app, later=dt.timedelta(minutes=5))["polled"] == 0  # settled: no longer polled
    assert_ledger_sound(ledger)


def test_funds_of_a_failed_payout_that_would_break_a_lowered_cap_wait_for_room(
    app, client, ledger, bank, in_transit_payout
):
    artisan_id, payout = in_transit_payout
    ledger.deliver(tier_changed(artisan_id, 0, version=2, previous=3))  # cap 0 while the money is away
    response = post_callback(client, callback_body(bank.settle(payout["id"], failure_code="account_closed")))
    assert response.json["status"] == "failed"
    assert set(payout_entries(ledger, payout["id"])) == {"created"}
    assert ledger.shown(*IN_TRANSIT) == 4_000
    [failed] = [e["data"] for e in outbox(app) if e["type"] == "accounts.payout.failed"]
    assert (failed["funds_returned"], failed["entry_id"]) == (False, None)
    with app.extensions["hirfa"].session_factory() as session:
        [case] = session.scalars(sa.select(LedgerCase)).all()
        assert (case.kind, case.cause, case.cause_id, case.status) == (
            "tier_cap_exceeded",
            "payout",
            payout["id"],
            "waiting",
        )
    assert_ledger_sound(ledger)
    # The worker tries again each pass: nothing while the cap is 0, then the money comes back.
    assert return_waiting_payout_funds(app.extensions["hirfa"].uow_factory) == 0
    ledger.deliver(tier_changed(artisan_id, 3, version=3, previous=0))
    assert return_waiting_payout_funds(app.extensions["hirfa"].uow_factory) == 1
    assert return_waiting_payout_funds(app.extensions["hirfa"].uow_factory) == 0
    assert set(payout_entries(ledger, payout["id"])) == {"created", "failed"}
    assert ledger.shown(*IN_TRANSIT) == 0
    with app.extensions["hirfa"].session_factory() as session:
        assert session.scalar(sa.select(LedgerCase.status)) == "resolved"
    assert_ledger_sound(ledger)


# --- idempotency ---------------------------------------------------------------------------------


def test_the_same_idempotency_key_replays_the_payout_and_pays_once(app, client, auth, ledger, bank):
    artisan_id = ready_artisan(ledger, 10_000)
    headers = auth(idempotency_key="payout-once")
    first = request_payout(client, headers, artisan_id, 3_000)
    again = request_payout(client, headers, artisan_id, 3_000)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json["id"] == first.json["id"]
    assert count(app, Payout) == 1 and len(bank.requests) == 1
    assert available(ledger, artisan_id) == 7_000

    reused = request_payout(client, headers, artisan_id, 5_000)
    assert (reused.status_code, reused.json["code"]) == (409, "idempotency_key_reuse")
    assert count(app, Payout) == 1


def test_a_retry_finds_its_payout_even_when_the_keys_stored_answer_was_lost(app, client, auth, ledger, bank):
    # The first request committed its payout, then died before its answer was stored under the key
    # (the idempotency layer then lets a retry run again): the payout itself remembers the key.
    artisan_id = ready_artisan(ledger, 10_000)
    headers = auth(idempotency_key="payout-after-a-crash")
    first = request_payout(client, headers, artisan_id, 3_000)
    assert first.status_code == 201
    with app.extensions["hirfa"].session_factory.begin() as session:
        session.execute(sa.text("DELETE FROM idempotency_keys"))
    again = request_payout(client, headers, artisan_id, 3_000)
    assert (again.status_code, again.json["id"]) == (201, first.json["id"])
    assert count(app, Payout) == 1 and len(bank.requests) == 1
    assert available(ledger, artisan_id) == 7_000

    with app.extensions["hirfa"].session_factory.begin() as session:
        session.execute(sa.text("DELETE FROM idempotency_keys"))
    other = request_payout(client, headers, artisan_id, 5_000)
    assert (other.status_code, other.json["code"]) == (409, "idempotency_key_reuse")
    assert count(app, Payout) == 1 and available(ledger, artisan_id) == 7_000
    # The key is the client's own: another client's identical key is another payout.
    someone_else = request_payout(
        client,
        auth(client_id="cli_test_operator_2", idempotency_key="payout-after-a-crash"),
        artisan_id,
        3_000,
    )
    assert someone_else.status_code == 201 and someone_else.json["id"] != first.json["id"]
    assert available(ledger, artisan_id) == 4_000


def test_a_key_older_than_its_lifetime_makes_a_new_payout(app, client, auth, ledger, bank):
    artisan_id = ready_artisan(ledger, 10_000)
    headers = auth(idempotency_key="payout-of-the-day")
    first = request_payout(client, headers, artisan_id, 3_000)
    # Two days later, the client uses the key again (keys live 24 hours, as everywhere in the API).
    with app.extensions["hirfa"].session_factory.begin() as session:
        for model in (Payout, IdempotencyKey):
            session.execute(
                sa.update(model).values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
            )
    again = request_payout(client, headers, artisan_id, 3_000)
    assert again.status_code == 201 and again.json["id"] != first.json["id"]
    assert count(app, Payout) == 2 and available(ledger, artisan_id) == 4_000


def test_a_payout_needs_an_idempotency_key(client, auth, ledger):
    artisan_id = ready_artisan(ledger, 10_000)
    headers = {"Authorization": auth()["Authorization"]}
    response = request_payout(client, headers, artisan_id, 3_000)
    assert (response.status_code, response.json["code"]) == (400, "idempotency_key_missing")


# --- who may do what -----------------------------------------------------------------------------


def test_an_artisan_pays_out_and_sees_only_their_own_payouts(app, client, auth, ledger):
    artisan_id, other_id = ready_artisan(ledger, 10_000), ready_artisan(ledger, 10_000, rib=OTHER_RIB)
    own = request_payout(client, auth(Role.ARTISAN, artisan_id), artisan_id, 1_000)
    assert own.status_code == 201, own.json
    assert own.json["artisan_id"] == artisan_id
    others = request_payout(client, auth(), other_id, 2_000).json

    as_artisan = auth(Role.ARTISAN, artisan_id)
    assert client.get(f"/v1/payouts/{own.json['id']}", headers=as_artisan).status_code == 200
    assert client.get(f"/v1/payouts/{others['id']}", headers=as_artisan).status_code == 404
    assert [p["id"] for p in client.get("/v1/payouts", headers=as_artisan).json["data"]] == [own.json["id"]]
    assert client.get(f"/v1/payouts?artisan_id={other_id}", headers=as_artisan).status_code == 404
    # Someone else's balance is "not found", never "forbidden".
    taking = request_payout(client, auth(Role.ARTISAN, artisan_id), other_id, 1_000)
    assert (taking.status_code, taking.json["code"]) == (404, "resource_not_found")
    assert available(ledger, other_id) == 8_000


def test_a_marketplace_sees_the_payouts_of_its_artisans_only(client, auth, ledger):
    artisan_id = ready_artisan(ledger, 10_000)  # registered by MARKETPLACE
    payout = request_payout(client, auth(), artisan_id, 1_000).json
    own_marketplace = auth(Role.MARKETPLACE, MARKETPLACE)
    other_marketplace = auth(Role.MARKETPLACE, OTHER_MARKETPLACE)

    assert client.get(f"/v1/payouts/{payout['id']}", headers=own_marketplace).status_code == 200
    listed = client.get(f"/v1/payouts?artisan_id={artisan_id}", headers=own_marketplace).json["data"]
    assert [p["id"] for p in listed] == [payout["id"]]

    hidden = client.get(f"/v1/payouts/{payout['id']}", headers=other_marketplace)
    assert (hidden.status_code, hidden.json["code"]) == (404, "resource_not_found")
    assert client.get(f"/v1/payouts?artisan_id={artisan_id}", headers=other_marketplace).status_code == 404
    assert client.get("/v1/payouts", headers=other_marketplace).json["data"] == []
    # Marketplaces read payouts; they do not make them.
    refused = request_payout(client, own_marketplace, artisan_id, 1_000)
    assert (refused.status_code, refused.json["code"]) == (403, "insufficient_scope")


def test_a_bank_partner_reads_its_artisans_payouts_but_requests_none(app, client, auth, ledger):
    artisan_id = ready_artisan(ledger, 10_000)  # paid at bank 007 (RIB)
    payout = request_payout(client, auth(), artisan_id, 1_000).json
    as_bank = auth(Role.BANK_PARTNER, BANK_CLIENT, bank_code=RIB[:3])
    assert client.get(f"/v1/payouts/{payout['id']}", headers=as_bank).status_code == 200
    assert [p["id"] for p in client.get("/v1/payouts", headers=as_bank).json["data"]] == [payout["id"]]
    # Another bank's partner sees none of them: the artisan is not its customer.
    other_bank = auth(Role.BANK_PARTNER, "cli_test_other_bank", bank_code="145")
    assert client.get(f"/v1/payouts/{payout['id']}", headers=other_bank).status_code == 404
    assert client.get("/v1/payouts", headers=other_bank).json["data"] == []
    assert client.get(f"/v1/payouts?artisan_id={artisan_id}", headers=other_bank).status_code == 404
    refused = request_payout(client, as_bank, artisan_id, 1_000)
    assert (refused.status_code, refused.json["code"]) == (403, "role_not_allowed")
    compliance = auth(Role.COMPLIANCE, "cli_test_compliance")
    assert client.get("/v1/payouts", headers=compliance).status_code == 403
    assert count(app, Payout) == 1


def test_payouts_are_listed_oldest_first_a_page_at_a_time_and_by_status(client, auth, ledger, bank):
    artisan_id = ready_artisan(ledger, 10_000)
    ids = [request_payout(client, auth(), artisan_id, 1_000 * n).json["id"] for n in (1, 2, 3)]
    post_callback(client, callback_body(bank.settle(ids[1])))

    first = client.get(f"/v1/payouts?artisan_id={artisan_id}&limit=2", headers=auth()).json
    assert ([p["id"] for p in first["data"]], first["has_more"]) == (ids[:2], True)
    rest = client.get(f"/v1/payouts?limit=2&starting_after={first['next_cursor']}", headers=auth()).json
    assert ([p["id"] for p in rest["data"]], rest["has_more"], rest["next_cursor"]) == (ids[2:], False, None)
    paid = client.get("/v1/payouts?status=paid", headers=auth()).json["data"]
    assert [p["id"] for p in paid] == [ids[1]]
    assert client.get("/v1/payouts?status=lost", headers=auth()).status_code == 422


# --- automatic payouts ---------------------------------------------------------------------------


def run_schedules(app, now: dt.datetime) -> int:
    context = app.extensions["hirfa"]
    return run_payout_schedules(context.uow_factory, context.payouts, now=now)


def payouts_of(app, artisan_id: str) -> list[Payout]:
    with app.extensions["hirfa"].session_factory() as session:
        query = sa.select(Payout).where(Payout.artisan_id == artisan_id).order_by(Payout.id)
        return list(session.scalars(query))


DAY_ONE = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)  # a Monday


def test_a_daily_schedule_pays_out_the_whole_balance_once_per_day(app, client, auth, ledger, bank):
    artisan_id = ready_artisan(ledger, 10_000)
    response = client.put(
        f"/v1/artisans/{artisan_id}/payout-schedule",
        json={"interval": "daily"},
        headers=auth(Role.ARTISAN, artisan_id),
    )
    assert response.status_code == 200, response.json
    assert (response.json["interval"], response.json["threshold"]) == ("daily", None)

    assert run_schedules(app, DAY_ONE) == 1
    [payout] = payouts_of(app, artisan_id)
    assert (payout.amount, payout.source, payout.status) == (10_000, "schedule", "in_transit")
    assert payout.schedule_key == f"auto:{artisan_id}:daily:2026-11-23"
    assert available(ledger, artisan_id) == 0

    fund(ledger, artisan_id, 3_000)
    assert run_schedules(app, DAY_ONE + dt.timedelta(hours=8)) == 0  # same day: already paid out
    assert run_schedules(app, DAY_ONE + dt.timedelta(days=1)) == 1
    assert [p.amount for p in payouts_of(app, artisan_id)] == [10_000, 3_000]
    assert run_schedules(app, DAY_ONE + dt.timedelta(days=1, hours=1)) == 0
    assert len(bank.requests) == 2
    assert_ledger_sound(ledger)


def test_a_day_with_nothing_available_leaves_the_window_open(app, client, auth, ledger):
    artisan_id = ready_artisan(ledger, 0)
    client.put(f"/v1/artisans/{artisan_id}/payout-schedule", json={"interval": "daily"}, headers=auth())
    assert run_schedules(app, DAY_ONE) == 0
    fund(ledger, artisan_id, 2_000)
    assert run_schedules(app, DAY_ONE + dt.timedelta(hours=2)) == 1


def test_a_weekly_schedule_pays_out_once_per_iso_week(app, client, auth, ledger):
    artisan_id = ready_artisan(ledger, 10_000)
    client.put(f"/v1/artisans/{artisan_id}/payout-schedule", json={"interval": "weekly"}, headers=auth())
    assert run_schedules(app, DAY_ONE) == 1
    fund(ledger, artisan_id, 1_000)
    assert run_schedules(app, DAY_ONE + dt.timedelta(days=6)) == 0  # Sunday, same week
    assert run_schedules(app, DAY_ONE + dt.timedelta(days=7)) == 1
    assert schedule_window("weekly", DAY_ONE) == "2026-W48"


def test_a_threshold_schedule_pays_out_once_the_balance_reaches_it(app, client, auth, ledger):
    artisan_id = ready_artisan(ledger, 3_000)
    response = client.put(
        f"/v1/artisans/{artisan_id}/payout-schedule",
        json={"interval": "threshold", "threshold": {"amount": 5_000, "currency": "MAD"}},
        headers=auth(),
    )
    assert response.status_code == 200, response.json
    assert response.json["threshold"] == {"amount": 5_000, "currency": "MAD"}
    shown = client.get(f"/v1/artisans/{artisan_id}/payout-schedule", headers=auth(Role.ARTISAN, artisan_id))
    assert (shown.json["interval"], shown.json["updated_by"]) == ("threshold", OPERATOR)

    assert run_schedules(app, DAY_ONE) == 0  # 3,000 < 5,000
    fund(ledger, artisan_id, 3_000)
    assert run_schedules(app, DAY_ONE) == 1
    assert [p.amount for p in payouts_of(app, artisan_id)] == [6_000]
    fund(ledger, artisan_id, 5_000)
    assert run_schedules(app, DAY_ONE + dt.timedelta(hours=1)) == 0  # at most one a day
    assert run_schedules(app, DAY_ONE + dt.timedelta(days=1)) == 1


def test_schedules_are_skipped_for_artisans_who_cannot_be_paid_out(app, client, auth, ledger):
    no_account = ready_artisan(ledger, 10_000, rib=None)
    tier_0 = ready_artisan(ledger, 10_000)
    ledger.deliver(tier_changed(tier_0, 0, version=2, previous=3))
    for artisan_id in (no_account, tier_0):
        client.put(f"/v1/artisans/{artisan_id}/payout-schedule", json={"interval": "daily"}, headers=auth())
    assert run_schedules(app, DAY_ONE) == 0
    assert count(app, Payout) == 0


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"interval": "threshold"}, "validation_error", "threshold"),
        ({"interval": "daily", "threshold": 5_000, "currency": "MAD"}, "validation_error", "threshold"),
        (
            {"interval": "threshold", "threshold": 5_000, "currency": "EUR"},
            "unsupported_currency",
            "threshold.currency",
        ),
        ({"interval": "threshold", "threshold": 0, "currency": "MAD"}, "validation_error", "threshold"),
        ({"interval": "hourly"}, "validation_error", "interval"),
    ],
)
def test_an_invalid_schedule_is_refused(client, auth, ledger, body, code, param):
    artisan_id = ready_artisan(ledger, 0)
    response = client.put(f"/v1/artisans/{artisan_id}/payout-schedule", json=body, headers=auth())
    assert response.status_code == 422, response.json
    assert (response.json["code"], response.json["param"]) == (code, param)


def test_only_the_artisan_or_an_operator_sets_a_schedule(client, auth, ledger):
    artisan_id = ready_artisan(ledger, 0)
    url = f"/v1/artisans/{artisan_id}/payout-schedule"
    assert client.get(url, headers=auth()).json["interval"] == "manual"
    refusals = (
        (auth(Role.ARTISAN, new_id("art")), 404),  # another artisan: not found, never forbidden
        (auth(Role.BANK_PARTNER, BANK_CLIENT), 403),
        (auth(Role.MARKETPLACE, MARKETPLACE), 403),
    )
    for headers, status in refusals:
        assert client.put(url, json={"interval": "daily"}, headers=headers).status_code == status
    assert client.get(url, headers=auth()).json["interval"] == "manual"


# --- concurrency ---------------------------------------------------------------------------------


def test_concurrent_payouts_never_overdraw(app, auth, ledger, bank):
    """Twelve requests at once for 3,000 each from 10,000: three succeed, the rest are refused."""
    artisan_id = ready_artisan(ledger, 10_000)
    requests_count = 12
    start = threading.Barrier(requests_count)
    results: list[tuple[int, str | None]] = []
    results_lock = threading.Lock()
    headers = [auth() for _ in range(requests_count)]

    def pay_out(index: int) -> None:
        client = app.test_client()
        start.wait()
        response = request_payout(client, headers[index], artisan_id, 3_000)
        with results_lock:
            results.append((response.status_code, (response.json or {}).get("code")))

    threads = [threading.Thread(target=pay_out, args=(index,)) for index in range(requests_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == requests_count, results

    created = [result for result in results if result[0] == 201]
    refused = [result for result in results if result != (201, None)]
    assert len(created) == 3, results
    assert set(refused) == {(409, "insufficient_funds")}
    assert available(ledger, artisan_id) == 1_000
    assert ledger.shown(*IN_TRANSIT) == 9_000
    assert count(app, Payout) == 3
    assert_ledger_sound(ledger)  # also: no artisan account below zero


# --- against the bank sandbox, over real HTTP ---------------------------------------------------


@dataclasses.dataclass
class LiveStack:
    sandbox: object  # the bank sandbox's Flask app
    accounts: object  # accounts' Flask app, served at ``url``
    url: str
    ledger: LedgerDriver


@pytest.fixture
def live(accounts_app, signing_keys) -> LiveStack:
    """The bank sandbox and accounts as HTTP servers on local ports, calling each other."""
    base_config = accounts_app.extensions["hirfa"].config
    sandbox = create_bank_sandbox_app(
        SandboxBankConfig(
            callback_secret=base_config.bank_callback_secret,
            api_key=base_config.bank_partner_api_key,
            callback_delay_seconds=0.2,
            callback_retries=3,
            callback_backoff_seconds=0.1,
        )
    )
    sandbox_server, accounts_server = LocalServer(), LocalServer()
    config = dataclasses.replace(
        base_config, bank_partner_url=sandbox_server.url, public_url=accounts_server.url
    )
    # The real HTTP adapter, as in production.
    accounts = create_accounts_app(config, key_lookup=lambda kid: signing_keys.public_keys().get(kid))
    sandbox_server.serve(sandbox)
    accounts_server.serve(accounts)
    try:
        yield LiveStack(sandbox, accounts, accounts_server.url, LedgerDriver(accounts))
    finally:
        stop_background_work(sandbox)
        accounts_server.stop()
        sandbox_server.stop()
        accounts.extensions["hirfa"].engine.dispose()


def live_payout(live, auth, artisan_id: str, amount: int) -> dict:
    body = {"artisan_id": artisan_id, "amount": amount, "currency": "MAD"}
    response = requests.post(f"{live.url}/v1/payouts", json=body, headers=auth(), timeout=10)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "in_transit"  # the sandbox accepted it

    def settled() -> dict | None:
        url = f"{live.url}/v1/payouts/{response.json()['id']}"
        shown = requests.get(url, headers=auth(), timeout=10).json()
        return shown if shown["status"] in ("paid", "failed") else None

    return wait_until(settled, timeout=15, interval=0.1, message="the sandbox bank's callback")


def test_a_payout_through_the_sandbox_bank_ends_paid(live, auth):
    artisan_id = ready_artisan(live.ledger, 10_000, rib=make_rib("007", "780", "0000001234567890"))
    payout = live_payout(live, auth, artisan_id, 6_000)
    assert (payout["status"], payout["failure_code"]) == ("paid", None)
    assert payout["bank_reference"].startswith("trf_")
    # The sandbox delivers every callback twice; once both are in, the payout was still paid once.
    stop_background_work(live.sandbox)
    assert [e["type"] for e in outbox(live.accounts)] == [
        "accounts.payout.created",
        "accounts.payout.in_transit",
        "accounts.payout.paid",
    ]
    assert (available(live.ledger, artisan_id), live.ledger.shown(*IN_TRANSIT)) == (4_000, 0)
    assert live.ledger.shown(*SOURCE_BANK) == -6_000
    assert_ledger_sound(live.ledger)


def test_a_payout_to_a_closed_test_account_at_the_sandbox_ends_failed_with_the_funds_back(live, auth):
    artisan_id = ready_artisan(live.ledger, 10_000, rib=make_rib("007", "780", "0000000000000001"))
    payout = live_payout(live, auth, artisan_id, 6_000)
    assert (payout["status"], payout["failure_code"]) == ("failed", "account_closed")
    stop_background_work(live.sandbox)
    assert [e["type"] for e in outbox(live.accounts)][-1] == "accounts.payout.failed"
    assert (available(live.ledger, artisan_id), live.ledger.shown(*IN_TRANSIT)) == (10_000, 0)
    assert_ledger_sound(live.ledger)
