"""Operators resolve ledger cases through the ledger API: an open case with a note (audited, once),
any case with an adjustment proposed for it (four-eyes above the threshold); a waiting case's
parked money is never dropped by a note, and an adjustment that takes its place releases it.
Also: the platform's and marketplaces' accounts with their balances."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from services.accounts.adapters.orm import JournalEntry, LedgerCase, ParkedEvent
from services.accounts.domain.artisan_rules import BalanceRuleViolation
from services.accounts.domain.ledger import AccountRef
from services.accounts.domain.postings import Posting
from services.accounts.service_layer.parked_events import post_all_parked_events
from services.accounts.service_layer.posting import record_case
from shared.auth.scopes import Role
from shared.db import utcnow
from shared.ids import new_id
from tests.integration.conftest import MARKETPLACE
from tests.integration.test_ledger_postings import assert_ledger_sound, release_all
from tests.ledger_support import LedgerDriver, payment_succeeded, refund_succeeded, tier_changed

ALICE, BOB = "stf_operator_alice", "stf_operator_bob"
CASES = "/v1/ledger/cases"
ADJUSTMENTS = "/v1/ledger/adjustments"


@pytest.fixture
def client(accounts_app):
    return accounts_app.test_client()


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def auth(issue_token):
    def headers(client_id: str = ALICE, role: Role = Role.OPERATOR, key: str | None = None) -> dict:
        return {
            "Authorization": "Bearer " + issue_token(role, client_id=client_id),
            "Idempotency-Key": key or uuid.uuid4().hex,
        }

    return headers


def reserve_below_zero_case(ledger: LedgerDriver) -> dict:
    """An open case: a refund the artisan could no longer cover, taken from the marketplace's
    reserve, leaves the reserve below zero."""
    artisan_id = ledger.artisan_at_tier(3)
    payment = payment_succeeded(artisan_id, 10_000, 0)
    ledger.deliver(payment)
    ledger.deliver(payment_succeeded(ledger.artisan_at_tier(3), 20_000, 0))  # the gateway holds more
    release_all(ledger)
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 10_000, 0))
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 1_200, 0))
    with ledger.context.session_factory() as session:
        case = session.scalar(
            sa.select(LedgerCase).where(LedgerCase.kind == "reserve_below_zero", LedgerCase.status == "open")
        )
        return {"id": case.id, "shortfall": -ledger.shown("marketplace", MARKETPLACE, "reserve")}


def refused_posting_case(ledger: LedgerDriver) -> str:
    """An open case needing no money movement: a posting the ledger refused for good (a balance
    rule), which an operator can explain with a note."""
    artisan_id = ledger.artisan_at_tier(3)
    posting = Posting(
        cause="adjustment",
        cause_id="adj_replayed_by_hand",
        posting_key=f"adjustment:replayed:{artisan_id}",
        description="A correction replayed by hand since",
        currency="MAD",
        lines=(
            (AccountRef("artisan", artisan_id, "available"), 500),
            (AccountRef("platform", "platform", "revenue"), -500),
        ),
        artisan_id=artisan_id,
    )
    refused = BalanceRuleViolation(
        "artisan_balance_negative", {"artisan_id": artisan_id, "account": "available", "balance_after": -500}
    )
    with ledger.context.uow_factory() as uow:
        case_id = record_case(uow, posting, refused).id
        uow.commit()
    return case_id


def parked_payment_case(ledger: LedgerDriver) -> tuple[str, str, object]:
    """A waiting case: a payment above the artisan's cap (tier 1, 200 MAD), parked until an upgrade."""
    artisan_id = ledger.artisan_at_tier(1)
    payment = payment_succeeded(artisan_id, 30_000, 0)
    ledger.deliver(payment)
    with ledger.context.session_factory() as session:
        case_id = session.scalar(sa.select(ParkedEvent.case_id).where(ParkedEvent.event_id == payment.id))
    return artisan_id, case_id, payment


def top_up(shortfall: int) -> list[dict]:
    return [
        {"owner_type": "platform", "owner_id": "platform", "kind": "bank:145", "amount": shortfall},
        {"owner_type": "marketplace", "owner_id": MARKETPLACE, "kind": "reserve", "amount": -shortfall},
    ]


def parked_events(ledger: LedgerDriver) -> list[str]:
    with ledger.context.session_factory() as session:
        return list(session.scalars(sa.select(ParkedEvent.event_id)))


def payment_entries(ledger: LedgerDriver, payment_id: str) -> list[str]:
    with ledger.context.session_factory() as session:
        return list(
            session.scalars(
                sa.select(JournalEntry.id).where(
                    JournalEntry.cause == "payment", JournalEntry.cause_id == payment_id
                )
            )
        )


# --- resolving with a note ---------------------------------------------------------------------------


def test_an_operator_resolves_an_open_case_with_a_note_once(client, auth, ledger):
    case = {"id": refused_posting_case(ledger)}
    listed = client.get(CASES, query_string={"status": "open"}, headers=auth()).json["data"]
    assert [(c["id"], c["parked_event"], c["resolution"]) for c in listed] == [(case["id"], None, None)]

    headers = auth(ALICE, key="resolve-once")
    note = "The marketplace transferred the shortfall; reconciliation matches it on Monday's statement."
    resolved = client.post(f"{CASES}/{case['id']}/resolve", json={"note": note}, headers=headers)
    assert resolved.status_code == 200, resolved.json
    body = resolved.json
    assert (body["status"], body["resolution"], body["resolved_by"]) == ("resolved", "noted", ALICE)
    assert body["details"]["note"] == note and body["resolved_at"]
    assert client.get(f"{CASES}/{case['id']}", headers=auth(BOB)).json == body

    # The same request again (a lost answer) replays it; another one is refused: resolved already.
    replayed = client.post(f"{CASES}/{case['id']}/resolve", json={"note": note}, headers=headers)
    assert replayed.status_code == 200 and replayed.headers["Idempotent-Replayed"] == "true"
    again = client.post(f"{CASES}/{case['id']}/resolve", json={"note": "again"}, headers=auth(BOB))
    assert (again.status_code, again.json["code"]) == (409, "ledger_case_resolved")
    with ledger.context.session_factory() as session:
        assert session.get(LedgerCase, case["id"]).details["resolved_by"] == ALICE
    assert_ledger_sound(ledger)


def test_resolving_needs_an_operator_a_note_and_a_real_case(client, auth, ledger):
    case = reserve_below_zero_case(ledger)
    path = f"{CASES}/{case['id']}/resolve"
    marketplace = client.post(path, json={"note": "mine"}, headers=auth("cli_mp", Role.MARKETPLACE))
    assert marketplace.status_code == 403
    for body in ({}, {"note": ""}, {"note": "x" * 501}):
        refused = client.post(path, json=body, headers=auth())
        assert (refused.status_code, refused.json["code"]) == (422, "validation_error")
    unknown = client.post(
        f"{CASES}/lc_01JD8Z6W5Q0T2C7S9K3M4N5P6R/resolve", json={"note": "n"}, headers=auth()
    )
    assert unknown.status_code == 404
    assert client.get(f"{CASES}/{case['id']}", headers=auth()).json["status"] == "open"


def test_a_waiting_case_is_not_resolved_with_a_note_its_money_stays_parked(client, auth, ledger):
    artisan_id, case_id, payment = parked_payment_case(ledger)
    case = client.get(f"{CASES}/{case_id}", headers=auth()).json
    assert case["status"] == "waiting"
    assert (case["parked_event"]["event_id"], case["parked_event"]["waiting_for"]) == (
        payment.id,
        "tier_cap_exceeded",
    )
    refused = client.post(f"{CASES}/{case_id}/resolve", json={"note": "looks fine"}, headers=auth())
    assert (refused.status_code, refused.json["code"]) == (409, "ledger_case_waiting")
    assert parked_events(ledger) == [payment.id]

    # It still posts by itself once the artisan has room, and the case says so.
    ledger.deliver(tier_changed(artisan_id, 2, version=2, previous=1))
    after = client.get(f"{CASES}/{case_id}", headers=auth()).json
    assert (after["status"], after["resolution"], after["resolved_by"]) == ("resolved", "posted", "system")
    assert ledger.shown("artisan", artisan_id, "pending") == 30_000


# --- resolving with an adjustment ------------------------------------------------------------------


def test_an_adjustment_for_a_waiting_case_takes_the_place_of_its_parked_event(client, auth, ledger):
    artisan_id, case_id, payment = parked_payment_case(ledger)
    # The operator books the captured money for the buyer's refund instead of the artisan.
    proposed = client.post(
        ADJUSTMENTS,
        json={
            "reason": "Payment above the artisan's cap: held in the reserve for the buyer's refund",
            "case_id": case_id,
            "lines": [
                {
                    "owner_type": "platform",
                    "owner_id": "platform",
                    "kind": "gateway_receivable:m2t",
                    "amount": 30_000,
                },
                {"owner_type": "marketplace", "owner_id": MARKETPLACE, "kind": "reserve", "amount": -30_000},
            ],
        },
        headers=auth(),
    )
    assert proposed.status_code == 201, proposed.json
    assert (proposed.json["status"], proposed.json["case_id"]) == ("posted", case_id)

    case = client.get(f"{CASES}/{case_id}", headers=auth()).json
    assert (case["status"], case["resolution"], case["resolved_by"], case["parked_event"]) == (
        "resolved",
        "adjustment",
        ALICE,
        None,
    )
    details = case["details"]
    assert (details["adjustment_id"], details["resolved_by_entry_id"]) == (
        proposed.json["id"],
        proposed.json["entry_id"],
    )
    assert details["released_event_id"] == payment.id
    assert details["released_envelope"]["data"]["payment_id"] == payment.data["payment_id"]
    assert parked_events(ledger) == []

    # Room under the cap later never brings the released payment back: its money was booked once.
    ledger.deliver(tier_changed(artisan_id, 3, version=2, previous=1))
    assert payment_entries(ledger, payment.data["payment_id"]) == []
    assert ledger.shown("artisan", artisan_id, "pending") == 0
    assert ledger.shown("marketplace", MARKETPLACE, "reserve") == 30_000
    assert_ledger_sound(ledger)


def book_in_reserve_instead(client, auth, case_id: str, amount: int) -> dict:
    """The operator books a parked payment's captured money in the reserve (for the buyer's refund)
    instead of the artisan's balance: the adjustment takes the parked event's place."""
    proposed = client.post(
        ADJUSTMENTS,
        json={
            "reason": "Payment above the artisan's cap: held in the reserve for the buyer's refund",
            "case_id": case_id,
            "lines": [
                {
                    "owner_type": "platform",
                    "owner_id": "platform",
                    "kind": "gateway_receivable:m2t",
                    "amount": amount,
                },
                {"owner_type": "marketplace", "owner_id": MARKETPLACE, "kind": "reserve", "amount": -amount},
            ],
        },
        headers=auth(),
    )
    assert (proposed.status_code, proposed.json["status"]) == (201, "posted"), proposed.json
    return proposed.json


def balances(ledger: LedgerDriver, artisan_id: str) -> dict[str, int]:
    return {
        "pending": ledger.shown("artisan", artisan_id, "pending"),
        "available": ledger.shown("artisan", artisan_id, "available"),
        "reserve": ledger.shown("marketplace", MARKETPLACE, "reserve"),
        "gateway": ledger.shown("platform", "platform", "gateway_receivable:m2t"),
        "commission": ledger.shown("marketplace", MARKETPLACE, "commission"),
    }


@pytest.mark.parametrize("delivered", ["alone", "in_a_batch"])
def test_a_payment_released_for_an_adjustment_never_posts_under_another_event_id(
    client, auth, ledger, delivered
):
    artisan_id, case_id, payment = parked_payment_case(ledger)
    adjustment = book_in_reserve_instead(client, auth, case_id, 30_000)
    ledger.deliver(tier_changed(artisan_id, 3, version=2, previous=1))  # room under the cap now
    before = balances(ledger, artisan_id)

    # The same payment in a new envelope: the relay publishing it again, or an operator's replay.
    again = dataclasses.replace(payment, id=new_id("evt"))
    if delivered == "alone":
        assert ledger.deliver(again)
    else:
        # Beside another payment, the consumer posts the two set-based.
        other = payment_succeeded(ledger.artisan_at_tier(3), 5_000, 0)
        before = {**before, "gateway": before["gateway"] + 5_000}
        results = ledger.consumer.apply_batch([again, other])
        assert [result.outcome.name for result in results] == ["APPLIED", "APPLIED"]
        assert payment_entries(ledger, other.data["payment_id"]) != []

    assert payment_entries(ledger, payment.data["payment_id"]) == []
    assert balances(ledger, artisan_id) == before
    assert parked_events(ledger) == []
    with ledger.context.session_factory() as session:
        taken = session.scalar(
            sa.select(JournalEntry).where(
                JournalEntry.posting_key == f"payment:{payment.data['payment_id']}:succeeded"
            )
        )
        assert (taken.id, taken.cause, taken.cause_id) == (
            adjustment["entry_id"],
            "adjustment",
            adjustment["id"],
        )
    case = client.get(f"{CASES}/{case_id}", headers=auth()).json
    assert (case["resolution"], case["details"]["released_event_id"]) == ("adjustment", payment.id)
    integrity = client.get("/v1/ledger/integrity", headers=auth()).json
    assert integrity["ok"] is True, integrity

    # The adjustment holds the payment's key, but did not credit the artisan: a refund of the
    # payment still waits for an operator rather than being taken from the artisan's other money.
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 30_000, 0))
    assert balances(ledger, artisan_id) == before
    with ledger.context.session_factory() as session:
        assert session.scalar(sa.select(ParkedEvent.waiting_for)) == "payment_not_posted"
    assert_ledger_sound(ledger)


def test_an_approval_is_refused_once_the_same_payment_posted_under_another_event_id(client, auth, ledger):
    artisan_id, case_id, payment = parked_payment_case(ledger)
    proposed = client.post(
        ADJUSTMENTS,
        json={
            "reason": "Book the capped payment by hand",
            "case_id": case_id,
            "lines": [
                {
                    "owner_type": "platform",
                    "owner_id": "platform",
                    "kind": "gateway_receivable:m2t",
                    "amount": 300_000,
                },
                {"owner_type": "marketplace", "owner_id": MARKETPLACE, "kind": "reserve", "amount": -300_000},
            ],
        },
        headers=auth(ALICE),
    ).json
    assert proposed["status"] == "pending_approval"
    # Room under the cap, and the payment again in a new envelope, applied by a consumer that
    # skipped the parked event (another transaction held it): the payment posts, the case still waits.
    with ledger.context.uow_factory() as uow:
        ledger.handlers["onboarding.artisan.kyc_tier_changed"](
            uow, tier_changed(artisan_id, 3, version=2, previous=1)
        )
        ledger.handlers["payments.payment.succeeded"](uow, dataclasses.replace(payment, id=new_id("evt")))
        uow.commit()
    assert client.get(f"{CASES}/{case_id}", headers=auth()).json["status"] == "waiting"

    late = client.post(f"{ADJUSTMENTS}/{proposed['id']}/approve", json={}, headers=auth(BOB))
    assert (late.status_code, late.json["code"]) == (409, "ledger_case_resolved"), late.json
    assert late.json["detail"].startswith("What the ledger case waits for was posted meanwhile")
    adjustment = client.get(f"{ADJUSTMENTS}/{proposed['id']}", headers=auth()).json
    assert (adjustment["status"], adjustment["entry_id"]) == ("pending_approval", None)
    assert len(payment_entries(ledger, payment.data["payment_id"])) == 1
    assert ledger.shown("artisan", artisan_id, "pending") == 30_000
    assert ledger.shown("marketplace", MARKETPLACE, "reserve") == 0

    # The worker's next pass finds the parked event's payment posted: the case resolves.
    later = utcnow() + dt.timedelta(minutes=1)
    assert post_all_parked_events(ledger.context.uow_factory, ledger.handlers, now=later) == 1
    assert client.get(f"{CASES}/{case_id}", headers=auth()).json["status"] == "resolved"
    assert parked_events(ledger) == []
    assert_ledger_sound(ledger)


def test_above_the_threshold_the_case_is_resolved_on_a_second_operators_approval(client, auth, ledger):
    case = reserve_below_zero_case(ledger)
    big = 150_000  # above the default four-eyes amount (1,000.00 MAD)
    body = {
        "reason": "Marketplace top-up and its advance",
        "case_id": case["id"],
        "lines": top_up(big),
    }
    proposed = client.post(ADJUSTMENTS, json=body, headers=auth(ALICE)).json
    assert proposed["status"] == "pending_approval"
    assert client.get(f"{CASES}/{case['id']}", headers=auth()).json["status"] == "open"
    listed = client.get(ADJUSTMENTS, query_string={"case_id": case["id"]}, headers=auth()).json["data"]
    assert [a["id"] for a in listed] == [proposed["id"]]

    own = client.post(f"{ADJUSTMENTS}/{proposed['id']}/approve", json={}, headers=auth(ALICE))
    assert (own.status_code, own.json["code"]) == (403, "four_eyes_required")
    approved = client.post(f"{ADJUSTMENTS}/{proposed['id']}/approve", json={"note": "ok"}, headers=auth(BOB))
    assert approved.status_code == 200, approved.json

    # The top-up brought the reserve back above zero: resolved by its entry, and the record names
    # the adjustment and who approved it.
    resolved = client.get(f"{CASES}/{case['id']}", headers=auth()).json
    assert (resolved["status"], resolved["resolution"], resolved["resolved_by"]) == (
        "resolved",
        "reserve_funded",
        BOB,
    )
    assert resolved["details"]["adjustment_id"] == proposed["id"]
    assert resolved["details"]["resolved_by_entry_id"] == approved.json["entry_id"]
    assert_ledger_sound(ledger)


def test_an_adjustment_waiting_for_approval_is_refused_once_its_case_resolved_itself(client, auth, ledger):
    artisan_id, case_id, payment = parked_payment_case(ledger)
    proposed = client.post(
        ADJUSTMENTS,
        json={
            "reason": "Book the capped payment by hand",
            "case_id": case_id,
            "lines": [
                {
                    "owner_type": "platform",
                    "owner_id": "platform",
                    "kind": "gateway_receivable:m2t",
                    "amount": 300_000,
                },
                {"owner_type": "marketplace", "owner_id": MARKETPLACE, "kind": "reserve", "amount": -300_000},
            ],
        },
        headers=auth(ALICE),
    ).json
    assert proposed["status"] == "pending_approval"
    ledger.deliver(tier_changed(artisan_id, 2, version=2, previous=1))  # the payment posts by itself
    assert payment_entries(ledger, payment.data["payment_id"]) != []

    late = client.post(f"{ADJUSTMENTS}/{proposed['id']}/approve", json={}, headers=auth(BOB))
    assert (late.status_code, late.json["code"]) == (409, "ledger_case_resolved")
    adjustment = client.get(f"{ADJUSTMENTS}/{proposed['id']}", headers=auth()).json
    assert (adjustment["status"], adjustment["entry_id"]) == ("pending_approval", None)
    assert ledger.shown("marketplace", MARKETPLACE, "reserve") == 0  # nothing posted twice
    assert client.get(f"{CASES}/{case_id}", headers=auth()).json["resolution"] == "posted"
    assert_ledger_sound(ledger)


# --- a reserve below zero: the marketplace owes it, so its case stays open until it is repaid -------


def test_a_reserve_still_below_zero_is_not_resolved_with_a_note(client, auth, ledger):
    case = reserve_below_zero_case(ledger)
    path = f"{CASES}/{case['id']}/resolve"
    refused = client.post(path, json={"note": "the marketplace promised to pay"}, headers=auth())
    assert (refused.status_code, refused.json["code"]) == (409, "reserve_still_below_zero")
    assert refused.json["balance"] == {"amount": -case["shortfall"], "currency": "MAD"}
    french = client.post(path, json={"note": "promis"}, headers={**auth(), "Accept-Language": "fr"}).json
    assert french["detail"].startswith("La réserve de la place de marché est toujours sous zéro")
    assert client.get(f"{CASES}/{case['id']}", headers=auth()).json["status"] == "open"
    [reserve] = client.get("/v1/ledger/reserves?below_zero=true", headers=auth()).json["data"]
    assert reserve["balance"] == {"amount": -case["shortfall"], "currency": "MAD"}

    # Topped up (by a transfer, not for the case): the ledger resolves it, and no note is needed.
    topped = client.post(
        ADJUSTMENTS, json={"reason": "Reserve top-up", "lines": top_up(case["shortfall"])}, headers=auth()
    )
    assert topped.json["status"] == "posted", topped.json
    resolved = client.get(f"{CASES}/{case['id']}", headers=auth()).json
    assert (resolved["status"], resolved["resolution"]) == ("resolved", "reserve_funded")
    late = client.post(path, json={"note": "paid"}, headers=auth())
    assert (late.status_code, late.json["code"]) == (409, "ledger_case_resolved")
    assert_ledger_sound(ledger)


def test_an_adjustment_that_leaves_the_reserve_below_zero_keeps_its_case_open(client, auth, ledger):
    case = reserve_below_zero_case(ledger)
    shortfall = case["shortfall"]
    part = shortfall // 3
    paid = client.post(
        ADJUSTMENTS,
        json={"reason": "The marketplace's first instalment", "case_id": case["id"], "lines": top_up(part)},
        headers=auth(ALICE),
    )
    assert (paid.status_code, paid.json["status"]) == (201, "posted"), paid.json

    # Still owed: the case stays open, with the instalment and the reserve as it now stands.
    still = client.get(f"{CASES}/{case['id']}", headers=auth()).json
    assert (still["status"], still["resolution"], still["resolved_by"]) == ("open", None, None)
    owed = {"amount": part - shortfall, "currency": "MAD"}
    assert still["details"]["balance"] == owed
    [posted] = still["details"]["adjustments_posted"]
    assert (posted["adjustment_id"], posted["entry_id"], posted["by"], posted["balance_after"]) == (
        paid.json["id"],
        paid.json["entry_id"],
        ALICE,
        owed,
    )
    [reserve] = client.get("/v1/ledger/reserves?below_zero=true", headers=auth()).json["data"]
    assert reserve["balance"] == owed
    listed = client.get(CASES, query_string={"status": "open"}, headers=auth()).json["data"]
    assert [c["id"] for c in listed if c["kind"] == "reserve_below_zero"] == [case["id"]]  # one case
    note = client.post(f"{CASES}/{case['id']}/resolve", json={"note": "paid in part"}, headers=auth())
    assert (note.status_code, note.json["code"]) == (409, "reserve_still_below_zero")

    # The rest, for the same case: back at zero, resolved by that adjustment and whoever posted it.
    rest = client.post(
        ADJUSTMENTS,
        json={"reason": "The rest", "case_id": case["id"], "lines": top_up(shortfall - part)},
        headers=auth(BOB),
    )
    assert rest.json["status"] == "posted", rest.json
    resolved = client.get(f"{CASES}/{case['id']}", headers=auth()).json
    assert (resolved["status"], resolved["resolution"], resolved["resolved_by"]) == (
        "resolved",
        "reserve_funded",
        BOB,
    )
    assert resolved["details"]["adjustment_id"] == rest.json["id"]
    assert [a["adjustment_id"] for a in resolved["details"]["adjustments_posted"]] == [paid.json["id"]]
    assert ledger.shown("marketplace", MARKETPLACE, "reserve") == 0
    assert client.get("/v1/ledger/reserves?below_zero=true", headers=auth()).json["data"] == []
    assert_ledger_sound(ledger)


def test_an_adjustment_names_a_real_open_ledger_case(client, auth, ledger):
    case = reserve_below_zero_case(ledger)
    body = {"reason": "Top-up", "lines": top_up(case["shortfall"])}
    for case_id, status, code in (
        ("rc_01JD8Z6W5Q0T2C7S9K3M4N5P6R", 422, "validation_error"),
        ("not-a-case", 422, "validation_error"),
        ("lc_01JD8Z6W5Q0T2C7S9K3M4N5P6R", 404, "resource_not_found"),
    ):
        refused = client.post(ADJUSTMENTS, json={**body, "case_id": case_id}, headers=auth())
        assert (refused.status_code, refused.json["code"]) == (status, code), case_id
        assert refused.json.get("param") == "case_id"
    explained = refused_posting_case(ledger)
    assert (
        client.post(f"{CASES}/{explained}/resolve", json={"note": "explained"}, headers=auth()).status_code
        == 200
    )
    resolved = client.post(ADJUSTMENTS, json={**body, "case_id": explained}, headers=auth())
    assert (resolved.status_code, resolved.json["code"]) == (409, "ledger_case_resolved")
    with ledger.context.session_factory() as session:
        assert (
            session.scalar(
                sa.select(sa.func.count()).select_from(JournalEntry).where(JournalEntry.cause == "adjustment")
            )
            == 0
        )

    # One Idempotency-Key is one adjustment: the same key for another case is a reuse.
    other = reserve_below_zero_case(ledger)
    first = client.post(
        ADJUSTMENTS,
        json={**body, "lines": top_up(other["shortfall"]), "case_id": other["id"]},
        headers=auth(key="k-1"),
    )
    assert first.status_code == 201, first.json
    reused = client.post(
        ADJUSTMENTS, json={**body, "lines": top_up(other["shortfall"])}, headers=auth(key="k-1")
    )
    assert reused.status_code == 409 and reused.json["code"] == "idempotency_key_reuse"


# --- the platform's accounts --------------------------------------------------------------------------


def test_operators_list_the_platform_and_marketplace_accounts_with_balances(client, auth, ledger):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 1_000))

    listed = client.get("/v1/ledger/accounts", query_string={"limit": 100}, headers=auth()).json["data"]
    balances = {(a["owner_type"], a["owner_id"], a["kind"]): a["balance"] for a in listed}
    assert balances[("platform", "platform", "gateway_receivable:m2t")] == {
        "amount": 10_000,
        "currency": "MAD",
    }
    assert balances[("marketplace", MARKETPLACE, "commission")]["amount"] > 0
    assert {owner for owner, _, _ in balances} == {"platform", "marketplace"}  # no artisan's account
    assert all(a["object"] == "ledger_account" and a["normal_side"] in ("debit", "credit") for a in listed)

    platform_only = client.get("/v1/ledger/accounts", query_string={"owner_type": "platform"}, headers=auth())
    assert {a["owner_type"] for a in platform_only.json["data"]} == {"platform"}
    first = client.get("/v1/ledger/accounts", query_string={"limit": 1}, headers=auth()).json
    second = client.get(
        "/v1/ledger/accounts",
        query_string={"limit": 1, "starting_after": first["next_cursor"]},
        headers=auth(),
    ).json
    assert first["data"][0]["id"] != second["data"][0]["id"]
    assert client.get("/v1/ledger/accounts", headers=auth("cli_mp", Role.MARKETPLACE)).status_code == 403
    bad = client.get("/v1/ledger/accounts", query_string={"owner_type": "artisan"}, headers=auth())
    assert bad.status_code == 422
