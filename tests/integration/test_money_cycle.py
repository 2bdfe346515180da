"""The ledger's money cycle (issue 12 §1): marketplaces' settings, the platform's fee posted to
revenue, commission payouts through the payout machinery, reserves below zero, and the integrity
check's watch over gateway receivables."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import requests
import sqlalchemy as sa

from sandbox.bank.app import stop_background_work
from services.accounts.adapters.orm import LedgerCase, OutboxMessage, Payout
from services.accounts.service_layer.commission_payouts import run_commission_payout_schedules
from shared.auth.scopes import Role
from shared.banking import make_rib
from shared.config import SANDBOX_BANK_CALLBACK_SECRET
from shared.partner_ports import PartnerRegistry
from tests.fakes import FakeTransferBank
from tests.integration.conftest import MARKETPLACE, OTHER_MARKETPLACE
from tests.integration.test_ledger_postings import assert_ledger_sound, entries, lines_of, release_all
from tests.integration.test_payouts import live as live_stack
from tests.ledger_support import (
    LedgerDriver,
    callback_body,
    payment_succeeded,
    refund_succeeded,
    signed,
)
from tests.support import wait_until

PARTNER_BANK = "banque_populaire"
OPERATOR = "cli_test_operator"
MARKETPLACE_RIB = make_rib("230", "780", "0000004444555566")
live = live_stack  # the bank sandbox and accounts as HTTP servers calling each other (test_payouts)


@pytest.fixture
def bank() -> FakeTransferBank:
    return FakeTransferBank(SANDBOX_BANK_CALLBACK_SECRET)


@pytest.fixture
def accounts_bank_partners(bank) -> PartnerRegistry:
    return PartnerRegistry({PARTNER_BANK: bank})


@pytest.fixture
def client(accounts_app):
    return accounts_app.test_client()


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def auth(issue_token):
    def headers(
        role: Role = Role.OPERATOR, client_id: str = OPERATOR, idempotency_key: str | None = None
    ) -> dict:
        return {
            "Authorization": "Bearer " + issue_token(role, client_id=client_id),
            "Idempotency-Key": idempotency_key or uuid.uuid4().hex,
        }

    return headers


def settings_url(marketplace_id: str = MARKETPLACE, what: str = "settings") -> str:
    return f"/v1/marketplaces/{marketplace_id}/{what}"


def set_fee(client, auth, basis_points: int, fixed: int, marketplace_id: str = MARKETPLACE):
    response = client.put(
        settings_url(marketplace_id, "platform-fee"),
        json={"basis_points": basis_points, "fixed": {"amount": fixed, "currency": "MAD"}},
        headers=auth(),
    )
    assert response.status_code == 200, response.json
    return response.json


def register_payout_account(client, auth, marketplace_id: str = MARKETPLACE):
    response = client.put(
        settings_url(marketplace_id, "payout-account"),
        json={"rib": MARKETPLACE_RIB, "holder_name": "Souk Digital SARL"},
        headers=auth(Role.MARKETPLACE, client_id=marketplace_id),
    )
    assert response.status_code == 200, response.json
    return response.json


def commission(ledger: LedgerDriver, marketplace_id: str = MARKETPLACE) -> int:
    return ledger.shown("marketplace", marketplace_id, "commission")


# --- settings --------------------------------------------------------------------------------------


def test_settings_start_at_the_defaults_and_only_operators_and_the_marketplace_see_them(client, auth):
    mine = client.get(settings_url(), headers=auth(Role.MARKETPLACE, client_id=MARKETPLACE))
    assert mine.status_code == 200, mine.json
    assert mine.json["platform_fee"] == {"basis_points": 0, "fixed": {"amount": 0, "currency": "MAD"}}
    assert (mine.json["payout_account"], mine.json["commission_payout_schedule"]) == (None, "manual")
    assert client.get(settings_url(), headers=auth()).status_code == 200
    for role, client_id in ((Role.MARKETPLACE, OTHER_MARKETPLACE), (Role.BANK_PARTNER, "cli_test_bank")):
        response = client.get(settings_url(), headers=auth(role, client_id=client_id))
        assert response.status_code == 404, (role, response.json)


def test_the_platform_fee_is_set_by_operators_only(client, auth):
    shown = set_fee(client, auth, 250, 100)
    assert shown["platform_fee"] == {"basis_points": 250, "fixed": {"amount": 100, "currency": "MAD"}}
    assert shown["updated_by"] == OPERATOR
    by_marketplace = client.put(
        settings_url(MARKETPLACE, "platform-fee"),
        json={"basis_points": 0},
        headers=auth(Role.MARKETPLACE, client_id=MARKETPLACE),
    )
    assert by_marketplace.status_code == 403
    too_much = client.put(
        settings_url(MARKETPLACE, "platform-fee"), json={"basis_points": 10_001}, headers=auth()
    )
    assert too_much.status_code == 422
    floats = client.put(settings_url(MARKETPLACE, "platform-fee"), json={"fixed": 1.5}, headers=auth())
    assert floats.status_code == 422


def test_the_payout_rib_is_checked_like_an_artisans(client, auth):
    bad_key = MARKETPLACE_RIB[:-2] + ("00" if MARKETPLACE_RIB[-2:] != "00" else "01")
    response = client.put(
        settings_url(MARKETPLACE, "payout-account"),
        json={"rib": bad_key, "holder_name": "Souk Digital SARL"},
        headers=auth(Role.MARKETPLACE, client_id=MARKETPLACE),
    )
    assert (response.status_code, response.json["code"], response.json["param"]) == (
        422,
        "invalid_rib",
        "rib",
    )
    assert bad_key not in response.get_data(as_text=True)
    unknown_bank = make_rib("999", "780", "0000004444555566")
    response = client.put(
        settings_url(MARKETPLACE, "payout-account"),
        json={"rib": unknown_bank, "holder_name": "Souk Digital SARL"},
        headers=auth(),
    )
    assert (response.status_code, response.json["code"]) == (422, "unknown_bank")
    other = client.put(
        settings_url(MARKETPLACE, "payout-account"),
        json={"rib": MARKETPLACE_RIB, "holder_name": "Not me"},
        headers=auth(Role.MARKETPLACE, client_id=OTHER_MARKETPLACE),
    )
    assert other.status_code == 404

    shown = register_payout_account(client, auth)
    assert shown["payout_account"] == {
        "bank_code": "230",
        "rib_last4": MARKETPLACE_RIB[-4:],
        "holder_name": "Souk Digital SARL",
    }
    assert MARKETPLACE_RIB not in str(shown)


# --- the platform's fee at payment time ------------------------------------------------------------


def test_the_platform_fee_goes_to_revenue_out_of_the_commission_not_the_artisans_share(client, auth, ledger):
    set_fee(client, auth, 250, 100)
    artisan_id = ledger.artisan_at_tier(3)
    payment = payment_succeeded(artisan_id, 10_000, 1_200)
    ledger.deliver(payment)
    [entry] = entries(ledger, cause="payment")
    assert lines_of(ledger, entry.id) == {
        ("platform", "gateway_receivable:m2t"): 10_000,
        ("artisan", "pending"): -8_800,
        ("marketplace", "commission"): -850,
        ("platform", "revenue"): -350,  # 2.5 % of 100.00 + 1.00
    }
    # A refund gives the application fee back from the commission; the platform keeps its fee.
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 10_000, 1_200))
    assert ledger.shown("platform", "platform", "revenue") == 350
    assert commission(ledger) == 850 - 1_200
    assert ledger.shown("artisan", artisan_id, "pending") == 0
    assert_ledger_sound(ledger)


def test_the_platform_fee_never_passes_the_application_fee_and_other_marketplaces_pay_none(
    client, auth, ledger
):
    set_fee(client, auth, 0, 500)
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 300))
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 1_000, marketplace_id=OTHER_MARKETPLACE))
    assert ledger.shown("platform", "platform", "revenue") == 300
    assert commission(ledger) == 0
    assert commission(ledger, OTHER_MARKETPLACE) == 1_000
    assert ledger.shown("artisan", artisan_id, "pending") == 9_700 + 9_000


def test_a_fee_change_applies_to_the_next_batch(client, auth, ledger):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 1_000))
    set_fee(client, auth, 1_000, 0)
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 1_000))
    assert ledger.shown("platform", "platform", "revenue") == 1_000
    assert commission(ledger) == 1_000


def test_a_first_change_racing_another_first_change_applies_on_top_of_it(
    accounts_app, client, auth, monkeypatch
):
    """No row yet: ``FOR UPDATE`` locks nothing, so another first change may insert the row between
    this one's read and its insert. This one then reads (and locks) that row instead of failing."""
    from services.accounts.adapters import marketplaces
    from services.accounts.adapters.orm import MarketplaceSettings

    register_payout_account(client, auth, OTHER_MARKETPLACE)  # another marketplace's row exists
    real_locked = marketplaces.settings_locked
    raced = []

    def locked_after_another_first_change(session, marketplace_id):
        if not raced:
            raced.append(marketplace_id)
            found = real_locked(session, marketplace_id)
            with accounts_app.extensions["hirfa"].session_factory() as other, other.begin():
                other.add(
                    MarketplaceSettings(
                        marketplace_id=marketplace_id,
                        platform_fee_bp=0,
                        platform_fee_fixed=0,
                        currency="MAD",
                        commission_payout_interval="weekly",
                        updated_by="cli_other_operator",
                    )
                )
            return found
        return real_locked(session, marketplace_id)

    monkeypatch.setattr(marketplaces, "settings_locked", locked_after_another_first_change)
    shown = set_fee(client, auth, 250, 100)

    assert raced == [MARKETPLACE]
    assert shown["platform_fee"] == {"basis_points": 250, "fixed": {"amount": 100, "currency": "MAD"}}
    assert (shown["commission_payout_schedule"], shown["updated_by"]) == ("weekly", OPERATOR)
    assert client.get(settings_url(), headers=auth()).json["platform_fee"]["basis_points"] == 250


# --- commission payouts ----------------------------------------------------------------------------


def earn_commission(ledger: LedgerDriver, amount: int, marketplace_id: str = MARKETPLACE) -> None:
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, amount * 10, amount, marketplace_id=marketplace_id))


def pay_commission(client, auth, marketplace_id: str = MARKETPLACE, key: str | None = None, **body):
    return client.post(
        settings_url(marketplace_id, "commission-payouts"), json=body, headers=auth(idempotency_key=key)
    )


def test_an_operator_pays_out_the_whole_commission_through_the_payout_machinery(
    accounts_app, client, auth, ledger, bank
):
    earn_commission(ledger, 2_500)
    register_payout_account(client, auth)
    response = pay_commission(client, auth, key="commission-1")
    assert response.status_code == 201, response.json
    payout = response.json
    assert (payout["payee_type"], payout["marketplace_id"], payout["artisan_id"]) == (
        "marketplace",
        MARKETPLACE,
        None,
    )
    assert (payout["status"], payout["amount"]) == ("in_transit", {"amount": 2_500, "currency": "MAD"})
    assert (payout["bank_code"], payout["rib_last4"]) == ("230", MARKETPLACE_RIB[-4:])
    assert commission(ledger) == 0
    assert ledger.shown("platform", "platform", "payouts_in_transit") == 2_500
    [sent] = [request for request in bank.requests if request.reference == payout["id"]]
    assert (sent.rib, sent.holder_name, sent.amount) == (MARKETPLACE_RIB, "Souk Digital SARL", 2_500)

    # The same Idempotency-Key gives the same payout, never a second one.
    again = pay_commission(client, auth, key="commission-1")
    assert again.json["id"] == payout["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"

    # The bank's callback settles it as any payout: Dr payouts_in_transit / Cr bank:{source}.
    body = callback_body(bank.settle(payout["id"]))
    answer = client.post(f"/v1/banks/{PARTNER_BANK}/callbacks", data=body, headers=signed(body))
    assert answer.json == {"received": True, "applied": True, "status": "paid"}
    assert ledger.shown("platform", "platform", "payouts_in_transit") == 0
    assert ledger.shown("platform", "platform", "bank:145") == -2_500
    [created, paid] = entries(ledger, cause="payout")
    assert lines_of(ledger, created.id) == {
        ("marketplace", "commission"): 2_500,
        ("platform", "payouts_in_transit"): -2_500,
    }
    assert lines_of(ledger, paid.id) == {
        ("platform", "payouts_in_transit"): 2_500,
        ("platform", "bank:145"): -2_500,
    }

    # Its events are the commission payout's twins of an artisan payout's, checked against their schemas.
    with ledger.context.session_factory() as session:
        types = session.scalars(
            sa.select(OutboxMessage.event_type)
            .where(OutboxMessage.event_type.like("accounts.%payout.%"))
            .order_by(OutboxMessage.seq)
        ).all()
    assert types == [
        "accounts.commission_payout.created",
        "accounts.commission_payout.in_transit",
        "accounts.commission_payout.paid",
    ]

    # The marketplace sees its own commission payouts; another marketplace does not.
    own = auth(Role.MARKETPLACE, client_id=MARKETPLACE)
    listed = client.get(settings_url(MARKETPLACE, "commission-payouts"), headers=own)
    assert [p["id"] for p in listed.json["data"]] == [payout["id"]]
    assert client.get(f"/v1/payouts/{payout['id']}", headers=own).json["status"] == "paid"
    other = auth(Role.MARKETPLACE, client_id=OTHER_MARKETPLACE)
    assert client.get(f"/v1/payouts/{payout['id']}", headers=other).status_code == 404
    assert client.get(settings_url(MARKETPLACE, "commission-payouts"), headers=other).status_code == 404
    assert_ledger_sound(ledger)


def test_a_retry_whose_answer_was_lost_replays_only_the_same_commission_payout(
    accounts_app, client, auth, ledger
):
    """Past the idempotency layer (its answer lost), the key finds the payout it created: replayed
    for the same request only; another currency or description with the key is refused."""
    from services.accounts.service_layer.commission_payouts import (
        RequestCommissionPayout,
        request_commission_payout,
    )
    from shared.auth import Principal
    from shared.auth.scopes import ROLE_SCOPES
    from shared.errors import IdempotencyKeyReuse

    earn_commission(ledger, 1_000)
    register_payout_account(client, auth)
    context = accounts_app.extensions["hirfa"]
    operator = Principal(OPERATOR, Role.OPERATOR, ROLE_SCOPES[Role.OPERATOR], token_id="t")

    def ask(**fields):
        command = RequestCommissionPayout(MARKETPLACE, idempotency_key="commission-lost", **fields)
        return request_commission_payout(context.uow_factory(), command, operator, context.payouts)

    first = ask(amount=400, description="March")
    assert ask(amount=400, currency="MAD", description="March").id == first.id
    for other in ({"amount": 400, "currency": "EUR", "description": "March"}, {"amount": 400}):
        with pytest.raises(IdempotencyKeyReuse):
            ask(**other)
    assert commission(ledger) == 600

    # No amount: the whole balance, whatever it was, so the first answer is the payout itself.
    whole = request_commission_payout(
        context.uow_factory(),
        RequestCommissionPayout(MARKETPLACE, idempotency_key="all"),
        operator,
        context.payouts,
    )
    again = request_commission_payout(
        context.uow_factory(),
        RequestCommissionPayout(MARKETPLACE, idempotency_key="all"),
        operator,
        context.payouts,
    )
    assert (whole.amount, again.id) == (600, whole.id)
    assert commission(ledger) == 0


def test_a_failed_commission_payout_gives_the_commission_back(client, auth, ledger, bank):
    earn_commission(ledger, 1_000)
    register_payout_account(client, auth)
    payout = pay_commission(client, auth, amount=600).json
    assert commission(ledger) == 400
    body = callback_body(bank.settle(payout["id"], failure_code="account_closed"))
    answer = client.post(f"/v1/banks/{PARTNER_BANK}/callbacks", data=body, headers=signed(body))
    assert answer.json["status"] == "failed"
    assert commission(ledger) == 1_000
    assert ledger.shown("platform", "platform", "payouts_in_transit") == 0


def test_commission_payouts_are_refused_without_an_account_funds_or_an_operator(client, auth, ledger):
    earn_commission(ledger, 1_000)
    response = pay_commission(client, auth)
    assert (response.status_code, response.json["code"]) == (409, "no_payout_account")
    register_payout_account(client, auth)
    response = pay_commission(client, auth, amount=1_001)
    assert (response.status_code, response.json["code"]) == (409, "insufficient_funds")
    assert response.json["available"] == {"amount": 1_000, "currency": "MAD"}
    nothing = pay_commission(client, auth, marketplace_id=OTHER_MARKETPLACE)
    assert nothing.status_code == 409
    by_marketplace = client.post(
        settings_url(MARKETPLACE, "commission-payouts"),
        json={},
        headers=auth(Role.MARKETPLACE, client_id=MARKETPLACE),
    )
    assert by_marketplace.status_code == 403
    assert commission(ledger) == 1_000


def test_a_daily_schedule_pays_the_commission_once_per_day(accounts_app, client, auth, ledger):
    context = accounts_app.extensions["hirfa"]
    earn_commission(ledger, 1_500)
    register_payout_account(client, auth)
    response = client.put(
        settings_url(MARKETPLACE, "commission-payout-schedule"),
        json={"interval": "daily"},
        headers=auth(Role.MARKETPLACE, client_id=MARKETPLACE),
    )
    assert response.json["commission_payout_schedule"] == "daily"
    assert (
        client.put(
            settings_url(MARKETPLACE, "commission-payout-schedule"),
            json={"interval": "threshold"},
            headers=auth(),
        ).status_code
        == 422
    )
    now = dt.datetime.now(dt.UTC)
    assert run_commission_payout_schedules(context.uow_factory, context.payouts, now=now) == 1
    earn_commission(ledger, 700)
    assert run_commission_payout_schedules(context.uow_factory, context.payouts, now=now) == 0
    assert (
        run_commission_payout_schedules(context.uow_factory, context.payouts, now=now + dt.timedelta(days=1))
        == 1
    )
    with context.session_factory() as session:
        amounts = session.scalars(
            sa.select(Payout.amount).where(Payout.marketplace_id == MARKETPLACE).order_by(Payout.id)
        ).all()
    assert amounts == [1_500, 700]
    assert commission(ledger) == 0


# --- reserves below zero ---------------------------------------------------------------------------


def test_a_reserve_below_zero_is_listed_and_opens_one_case(client, auth, ledger):
    artisan_id = ledger.artisan_at_tier(3)
    payment = payment_succeeded(artisan_id, 10_000, 0)
    ledger.deliver(payment)
    ledger.deliver(payment_succeeded(ledger.artisan_at_tier(3), 20_000, 0))  # the gateway holds more
    release_all(ledger)
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 10_000, 0))
    # Two refunds beyond what the artisan holds: both from the reserve, one open case.
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 1_000, 0))
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 500, 0))
    assert ledger.shown("marketplace", MARKETPLACE, "reserve") == -1_500

    response = client.get("/v1/ledger/reserves?below_zero=true", headers=auth())
    assert response.status_code == 200, response.json
    [reserve] = response.json["data"]
    assert (reserve["marketplace_id"], reserve["balance"], reserve["below_zero"]) == (
        MARKETPLACE,
        {"amount": -1_500, "currency": "MAD"},
        True,
    )
    assert (
        client.get("/v1/ledger/reserves?below_zero=true", headers=auth(Role.MARKETPLACE)).status_code == 403
    )
    with ledger.context.session_factory() as session:
        cases = session.scalars(sa.select(LedgerCase).where(LedgerCase.kind == "reserve_below_zero")).all()
    assert [(case.cause_id, case.status) for case in cases] == [(MARKETPLACE, "open")]
    assert cases[0].details["balance"] == {"amount": -1_000, "currency": "MAD"}

    # Funded back to zero (here by an operator's adjustment; in production a top-up recognised in the
    # bank statement), the reserve's case is resolved, and a later shortfall opens a new one.
    funded = client.post(
        "/v1/ledger/adjustments",
        json={
            "reason": "Reserve top-up received by transfer",
            "lines": [
                {"owner_type": "platform", "owner_id": "platform", "kind": "bank:145", "amount": 1_500},
                {"owner_type": "marketplace", "owner_id": MARKETPLACE, "kind": "reserve", "amount": -1_500},
            ],
        },
        headers=auth(),
    )
    assert funded.status_code == 201 and funded.json["status"] == "posted", funded.json
    assert client.get("/v1/ledger/reserves?below_zero=true", headers=auth()).json["data"] == []
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 200, 0))
    with ledger.context.session_factory() as session:
        cases = session.scalars(
            sa.select(LedgerCase)
            .where(LedgerCase.kind == "reserve_below_zero")
            .order_by(LedgerCase.created_at)
        ).all()
    assert [case.status for case in cases] == ["resolved", "open"]
    assert cases[0].details["resolution"] == "reserve_funded"


# --- integrity -------------------------------------------------------------------------------------


@pytest.mark.corrupts_ledger
def test_integrity_reports_a_gateway_receivable_below_zero(client, auth, ledger):
    artisan_id = ledger.artisan_at_tier(3)
    payment = payment_succeeded(artisan_id, 1_000, 0)
    ledger.deliver(payment)
    ledger.deliver(payment_succeeded(artisan_id, 5_000, 0, gateway="cmi"))
    release_all(ledger)
    # More refunded than the gateway ever captured: the receivable goes below zero.
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 1_000, 0))
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 300, 0))
    report = client.get("/v1/ledger/integrity", headers=auth()).json
    assert report["ok"] is False
    [difference] = [d for d in report["differences"] if d["check"] == "gateway_receivable_not_negative"]
    assert (difference["expected"], difference["actual"]) == (0, -300)


# --- against the bank sandbox, over real HTTP ------------------------------------------------------


@pytest.mark.parametrize(
    ("rib", "status", "commission_after"),
    [
        (MARKETPLACE_RIB, "paid", 0),
        (make_rib("230", "780", "0000000000000001"), "failed", 3_000),  # the sandbox's closed account
    ],
)
def test_a_commission_payout_through_the_sandbox_bank(live, auth, rib, status, commission_after):
    earn_commission(live.ledger, 3_000)
    headers = auth(Role.MARKETPLACE, client_id=MARKETPLACE)
    registered = requests.put(
        f"{live.url}{settings_url(MARKETPLACE, 'payout-account')}",
        json={"rib": rib, "holder_name": "Souk Digital SARL"},
        headers=headers,
        timeout=10,
    )
    assert registered.status_code == 200, registered.text
    response = requests.post(
        f"{live.url}{settings_url(MARKETPLACE, 'commission-payouts')}", json={}, headers=auth(), timeout=10
    )
    assert response.status_code == 201, response.text
    payout_id = response.json()["id"]

    def settled() -> dict | None:
        shown = requests.get(f"{live.url}/v1/payouts/{payout_id}", headers=headers, timeout=10).json()
        return shown if shown["status"] in ("paid", "failed") else None

    payout = wait_until(settled, timeout=15, interval=0.1, message="the sandbox bank's callback")
    stop_background_work(live.sandbox)
    assert payout["status"] == status
    assert commission(live.ledger) == commission_after
    assert live.ledger.shown("platform", "platform", "payouts_in_transit") == 0
    assert live.ledger.shown("platform", "platform", "bank:145") == (-3_000 if status == "paid" else 0)
    assert_ledger_sound(live.ledger)
