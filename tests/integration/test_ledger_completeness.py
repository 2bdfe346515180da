"""The completeness check, the second line of defence: accounts asks payments (its own service
client's token, scope payments:audit) which succeeded payments the ledger has not confirmed, and a
payment missing from the ledger past the grace period is a case, a metric and a difference in the
integrity report, until it arrives."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from services.accounts.adapters.orm import LedgerCase
from services.accounts.adapters.payments_api import HttpPaymentsLedgerView
from services.accounts.domain.ports import UnpostedPayment
from services.accounts.service_layer.completeness import PAYMENT_NOT_IN_LEDGER, check_completeness
from services.onboarding.service_layer.api_clients import ensure_client
from services.payments.adapters.gateways.fake import FakeGateway
from services.payments.adapters.orm import Payee, PayeeMarketplace
from services.payments.domain.gateway import GatewayRegistry, TokeniseRequest
from services.payments.service_layer.projections import on_ledger_entry_posted
from shared.auth.scopes import Role
from shared.config import DEMO_ACCOUNTS_CLIENT_ID, DEMO_ACCOUNTS_CLIENT_SECRET
from shared.db import utcnow
from shared.events import make_event
from shared.ids import new_id
from tests.integration.conftest import MARKETPLACE
from tests.integration.test_ledger_statements import statements
from tests.ledger_support import LedgerDriver, payment_succeeded

GRACE = dt.timedelta(minutes=5)


# -- payments: the read for Hirfa's own checks -------------------------------------------------------


@pytest.fixture
def gateway():
    return FakeGateway()


@pytest.fixture
def payments(make_payments_app, gateway):
    return make_payments_app(gateways=GatewayRegistry({"fake": gateway}), default_gateway="fake")


def succeed_a_payment(payments, gateway, marketplace_headers, amount: int = 12_000) -> str:
    """A payment to a new tier-3 payee, confirmed with a card the fake gateway approves."""
    context = payments.extensions["hirfa"]
    artisan_id = new_id("art")
    with context.uow_factory() as uow:
        uow.session.add(
            Payee(
                artisan_id=artisan_id,
                kyc_tier=3,
                tier_cap_amount=2_000_000,
                currency="MAD",
                payout_eligible=True,
                kyc_status="active",
                kyc_version=1,
                as_of=utcnow(),
            )
        )
        uow.session.flush()
        uow.session.add(PayeeMarketplace(artisan_id=artisan_id, marketplace_id=MARKETPLACE))
        uow.commit()
    client = payments.test_client()
    body = {
        "artisan_id": artisan_id,
        "amount": amount,
        "currency": "MAD",
        "application_fee": 1000,
        "payment_method_type": "card",
    }
    created = client.post("/v1/payments", json=body, headers=marketplace_headers(str(uuid.uuid4())))
    assert created.status_code == 201, created.json
    card = gateway.tokenise(TokeniseRequest("4242424242424242", 12, 2030, "123")).token
    confirmed = client.post(
        f"/v1/payments/{created.json['id']}/confirm", json={"card_token": card}, headers=marketplace_headers()
    )
    assert confirmed.json["status"] == "succeeded", confirmed.json
    return created.json["id"]


def ledger_posted(payments, payment_id: str, artisan_id: str) -> None:
    """Payments hears of the payment's entry (accounts.ledger.entry_posted)."""
    event = make_event(
        "accounts.ledger.entry_posted",
        subject=new_id("je"),
        key=artisan_id,
        data={
            "entry_id": new_id("je"),
            "cause": "payment",
            "cause_id": payment_id,
            "event_id": None,
            "artisan_id": artisan_id,
            "description": "test",
            "posted_at": utcnow().isoformat(),
            "lines": [
                {
                    "account": "a",
                    "owner_type": "artisan",
                    "owner_id": artisan_id,
                    "kind": "pending",
                    "amount": -11_000,
                    "currency": "MAD",
                },
                {
                    "account": "b",
                    "owner_type": "platform",
                    "owner_id": "platform",
                    "kind": "gateway_receivable:fake",
                    "amount": 11_000,
                    "currency": "MAD",
                },
            ],
        },
    )
    with payments.extensions["hirfa"].uow_factory() as uow:
        on_ledger_entry_posted(uow, event)
        uow.commit()


def unposted(payments, token: str, succeeded_before: dt.datetime, **params):
    return payments.test_client().get(
        "/v1/unposted-payments",
        query_string={"succeeded_before": succeeded_before.isoformat(), **params},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_payments_lists_the_succeeded_payments_the_ledger_has_not_confirmed(
    payments, gateway, marketplace_headers, issue_token
):
    posted, waiting = (succeed_a_payment(payments, gateway, marketplace_headers) for _ in range(2))
    context = payments.extensions["hirfa"]
    with context.session_factory() as session:
        artisan_of = dict(session.execute(sa.text("SELECT id, artisan_id FROM payments")).all())
    ledger_posted(payments, posted, artisan_of[posted])
    service = issue_token(Role.SERVICE, client_id="cli_accounts")
    later = utcnow() + dt.timedelta(seconds=1)

    answer = unposted(payments, service, later)
    assert answer.status_code == 200, answer.json
    assert [item["payment_id"] for item in answer.json["data"]] == [waiting]
    item = answer.json["data"][0]
    assert item["object"] == "unposted_payment"
    assert (item["artisan_id"], item["marketplace_id"]) == (artisan_of[waiting], MARKETPLACE)
    assert item["amount"] == {"amount": 12_000, "currency": "MAD"}
    # Only those that succeeded before the time asked.
    assert unposted(payments, service, later - dt.timedelta(minutes=1)).json["data"] == []


def test_the_list_pages_by_id(payments, gateway, marketplace_headers, issue_token):
    ids = sorted(succeed_a_payment(payments, gateway, marketplace_headers) for _ in range(3))
    service = issue_token(Role.SERVICE, client_id="cli_accounts")
    later = utcnow() + dt.timedelta(seconds=1)
    first = unposted(payments, service, later, limit=2).json
    second = unposted(payments, service, later, limit=2, starting_after=first["next_cursor"]).json
    assert [item["payment_id"] for item in first["data"] + second["data"]] == ids
    assert (first["has_more"], second["has_more"]) == (True, False)


@pytest.mark.parametrize("role", [Role.MARKETPLACE, Role.OPERATOR, Role.BANK_PARTNER])
def test_only_a_hirfa_service_may_read_across_marketplaces(payments, issue_token, role):
    answer = unposted(payments, issue_token(role), utcnow())
    assert answer.status_code == 403
    assert answer.json["code"] == "insufficient_scope"


class AppsSession:
    """``requests.Session`` for the adapter, answered by the apps' test clients (by host)."""

    def __init__(self, apps: dict[str, object]) -> None:
        self.clients = {host: app.test_client() for host, app in apps.items()}
        self.calls: list[tuple[str, str]] = []

    def request(self, method, url, *, headers=None, timeout=None, params=None, data=None, auth=None):
        assert timeout, "every call has a timeout"
        parts = urlsplit(url)
        self.calls.append((method, parts.path))
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        answer = self.clients[parts.netloc].open(
            parts.path, method=method, headers=headers, query_string=params, data=data
        )
        return Answer(answer.status_code, answer.get_json())


@dataclasses.dataclass
class Answer:
    status_code: int
    body: object

    def json(self):
        if self.body is None:
            raise ValueError("no JSON")
        return self.body


def test_accounts_reads_payments_with_a_token_of_its_own_service_client(
    onboarding_app, payments, gateway, marketplace_headers
):
    ensure_client(
        onboarding_app.extensions["hirfa"].uow_factory(),
        client_id=DEMO_ACCOUNTS_CLIENT_ID,
        client_secret=DEMO_ACCOUNTS_CLIENT_SECRET,
        name="Accounts service",
        role=Role.SERVICE,
    )
    payment_id = succeed_a_payment(payments, gateway, marketplace_headers, amount=9_000)
    session = AppsSession({"onboarding.test": onboarding_app, "payments.test": payments})
    view = HttpPaymentsLedgerView(
        payments_url="http://payments.test",
        token_url="http://onboarding.test/v1/oauth/token",
        client_id=DEMO_ACCOUNTS_CLIENT_ID,
        client_secret=DEMO_ACCOUNTS_CLIENT_SECRET,
        timeout=5,
        session=session,
    )
    later = utcnow() + dt.timedelta(seconds=1)

    [found] = list(view.unposted_payments(later))
    assert (found.payment_id, found.amount, found.currency) == (payment_id, 9_000, "MAD")
    assert list(view.unposted_payments(later)) == [found]
    # One token, kept for the second check.
    assert [path for _, path in session.calls].count("/v1/oauth/token") == 1


# -- accounts: the check ----------------------------------------------------------------------------


@dataclasses.dataclass
class FakePayments:
    """Payments' answer: the succeeded payments it has not heard the ledger posted."""

    unposted: list[UnpostedPayment] = dataclasses.field(default_factory=list)
    asked: list[dt.datetime] = dataclasses.field(default_factory=list)

    def unposted_payments(self, succeeded_before: dt.datetime):
        self.asked.append(succeeded_before)
        return iter([p for p in self.unposted if p.succeeded_at < succeeded_before])


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


def reported(event) -> UnpostedPayment:
    data = event.data
    return UnpostedPayment(
        payment_id=data["payment_id"],
        artisan_id=data["artisan_id"],
        marketplace_id=data["marketplace_id"],
        amount=data["amount"]["amount"],
        currency="MAD",
        succeeded_at=dt.datetime.fromisoformat(data["succeeded_at"]),
    )


def gap_cases(context) -> list[LedgerCase]:
    with context.session_factory() as session:
        return list(session.scalars(sa.select(LedgerCase).where(LedgerCase.kind == PAYMENT_NOT_IN_LEDGER)))


def integrity(accounts_app, issue_token) -> dict:
    answer = accounts_app.test_client().get(
        "/v1/ledger/integrity", headers={"Authorization": "Bearer " + issue_token(Role.OPERATOR)}
    )
    assert answer.status_code == 200, answer.json
    return answer.json


def gauge(accounts_app, name: str) -> float:
    text = accounts_app.test_client().get("/metrics").get_data(as_text=True)
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def test_a_succeeded_payment_missing_from_the_ledger_is_a_case_until_it_arrives(
    accounts_app, ledger, issue_token
):
    context = accounts_app.extensions["hirfa"]
    artisan_id = ledger.artisan_at_tier(3)
    long_ago = dt.timedelta(minutes=-30)
    posted = payment_succeeded(artisan_id, 10_000, 1_000)
    lost = payment_succeeded(artisan_id, 25_000, 2_000)
    parked = payment_succeeded(new_id("art"), 5_000, 500)  # its artisan's tier has not arrived
    assert ledger.deliver(posted) and ledger.deliver(parked)
    payments = FakePayments([reported(e) for e in (posted, lost, parked)])
    payments.unposted = [
        dataclasses.replace(p, succeeded_at=p.succeeded_at + long_ago) for p in payments.unposted
    ]

    assert check_completeness(context.uow_factory, payments, grace=GRACE) == {
        "missing": 1,
        "cases_opened": 1,
        "cases_resolved": 0,
    }
    [case] = gap_cases(context)
    assert (case.status, case.cause, case.cause_id, case.artisan_id) == (
        "open",
        "payment",
        lost.data["payment_id"],
        artisan_id,
    )
    assert case.details["amount"] == {"amount": 25_000, "currency": "MAD"}
    report = integrity(accounts_app, issue_token)
    assert report["ok"] is False
    assert report["differences"] == [
        {
            "check": "succeeded_payment_in_ledger",
            "payment_id": lost.data["payment_id"],
            "case_id": case.id,
            "currency": "MAD",
            "expected": 25_000,
            "actual": 0,
        }
    ]
    assert gauge(accounts_app, "hirfa_ledger_payments_not_in_ledger") == 1
    assert gauge(accounts_app, "hirfa_ledger_oldest_payment_not_in_ledger_seconds") >= 29 * 60

    # Checked again: still one case.
    check_completeness(context.uow_factory, payments, grace=GRACE)
    assert len(gap_cases(context)) == 1

    # The event comes (replayed, published again): the next check resolves the case.
    assert ledger.deliver(lost)
    assert check_completeness(context.uow_factory, payments, grace=GRACE)["cases_resolved"] == 1
    [case] = gap_cases(context)
    assert (case.status, case.details["resolution"], case.details["resolved_by"]) == (
        "resolved",
        "arrived",
        "system",
    )
    assert integrity(accounts_app, issue_token)["ok"] is True
    assert gauge(accounts_app, "hirfa_ledger_payments_not_in_ledger") == 0


def test_payments_are_asked_only_for_those_older_than_the_grace_period(accounts_app, ledger):
    context = accounts_app.extensions["hirfa"]
    payments = FakePayments([reported(payment_succeeded(ledger.artisan_at_tier(3), 10_000, 1_000))])
    before = utcnow()

    assert check_completeness(context.uow_factory, payments, grace=GRACE)["missing"] == 0  # on its way
    assert gap_cases(context) == []
    [asked] = payments.asked
    assert before - GRACE <= asked <= utcnow() - GRACE


def test_a_case_is_resolved_once_payments_no_longer_lists_the_payment(accounts_app, ledger):
    context = accounts_app.extensions["hirfa"]
    lost = reported(payment_succeeded(ledger.artisan_at_tier(3), 10_000, 1_000))
    payments = FakePayments([dataclasses.replace(lost, succeeded_at=lost.succeeded_at - 2 * GRACE)])
    check_completeness(context.uow_factory, payments, grace=GRACE)
    payments.unposted = []
    assert check_completeness(context.uow_factory, payments, grace=GRACE)["cases_resolved"] == 1
    [case] = gap_cases(context)
    # Resolved as every ledger case is: how, when and by whom (the ledger itself).
    assert (case.status, case.details["resolution"], case.details["resolved_by"]) == (
        "resolved",
        "confirmed_by_payments",
        "system",
    )
    assert dt.datetime.fromisoformat(case.details["resolved_at"]) <= utcnow()


def test_an_adjustment_is_refused_for_a_payment_missing_from_the_ledger(accounts_app, ledger, issue_token):
    # The payment's own posting comes with its replayed event: an adjustment would count it twice.
    context = accounts_app.extensions["hirfa"]
    lost = payment_succeeded(ledger.artisan_at_tier(3), 25_000, 2_000)
    missing = dataclasses.replace(
        reported(lost), succeeded_at=reported(lost).succeeded_at - dt.timedelta(hours=1)
    )
    check_completeness(context.uow_factory, FakePayments([missing]), grace=GRACE)
    [case] = gap_cases(context)

    answer = accounts_app.test_client().post(
        "/v1/ledger/adjustments",
        json={
            "reason": "Credit the artisan for the missing payment",
            "case_id": case.id,
            "lines": [
                {
                    "owner_type": "platform",
                    "owner_id": "platform",
                    "kind": "gateway_receivable:m2t",
                    "amount": 100,
                },
                {
                    "owner_type": "marketplace",
                    "owner_id": lost.data["marketplace_id"],
                    "kind": "reserve",
                    "amount": -100,
                },
            ],
        },
        headers={"Authorization": "Bearer " + issue_token(Role.OPERATOR), "Idempotency-Key": new_id("key")},
    )
    assert (answer.status_code, answer.json["code"]) == (409, "ledger_case_needs_replay"), answer.json
    assert [c.status for c in gap_cases(context)] == ["open"]

    # Replayed, the payment posts once and the next check resolves its case.
    assert ledger.deliver(lost)
    check_completeness(context.uow_factory, FakePayments([missing]), grace=GRACE)
    assert [c.status for c in gap_cases(context)] == ["resolved"]


class CommitTogether:
    """A unit-of-work factory whose units wait for one another before committing (a few seconds
    at most: one that waits on the other's lock never comes), so that concurrent checks have all
    read the open cases before any of them commits."""

    def __init__(self, uow_factory, parties: int) -> None:
        self.uow_factory = uow_factory
        self.meeting = threading.Barrier(parties, timeout=3)

    def __call__(self):
        uow = self.uow_factory()
        commit = uow.commit

        def meet_then_commit() -> None:
            try:
                self.meeting.wait()
            except threading.BrokenBarrierError:
                pass  # the other check waits for this one's lock: commit alone
            commit()

        uow.commit = meet_then_commit
        return uow


def long_missing(event) -> UnpostedPayment:
    payment = reported(event)
    return dataclasses.replace(payment, succeeded_at=payment.succeeded_at - 2 * GRACE)


def test_two_checks_at_once_open_one_case_per_payment(accounts_app, ledger):
    # Two workers (a rollout, a second replica) check at the same moment.
    context = accounts_app.extensions["hirfa"]
    payments = FakePayments([long_missing(payment_succeeded(ledger.artisan_at_tier(3), 10_000, 1_000))])
    together = CommitTogether(context.uow_factory, parties=2)

    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(pool.map(lambda _: check_completeness(together, payments, grace=GRACE), range(2)))

    assert [case.status for case in gap_cases(context)] == ["open"]
    assert sorted(count["cases_opened"] for count in counts) == [0, 1]
    assert [count["missing"] for count in counts] == [1, 1]
    assert gauge(accounts_app, "hirfa_ledger_payments_not_in_ledger") == 1
    # Once payments has heard of its entry, the one case resolves.
    assert check_completeness(context.uow_factory, FakePayments(), grace=GRACE)["cases_resolved"] == 1


def test_a_payment_time_without_a_zone_is_read_as_utc(accounts_app, ledger, issue_token):
    # Payments on SQLite answers its times without a zone; a case may hold one from such an answer.
    context = accounts_app.extensions["hirfa"]
    an_hour_ago = utcnow() - dt.timedelta(hours=1)
    lost = dataclasses.replace(
        reported(payment_succeeded(ledger.artisan_at_tier(3), 10_000, 1_000)),
        succeeded_at=an_hour_ago.replace(tzinfo=None),
    )

    class ZonelessPayments:
        def unposted_payments(self, succeeded_before):
            return iter([lost])

    assert check_completeness(context.uow_factory, ZonelessPayments(), grace=GRACE)["cases_opened"] == 1
    [case] = gap_cases(context)
    assert dt.datetime.fromisoformat(case.details["succeeded_at"]) == an_hour_ago
    with context.uow_factory() as uow:
        stored = uow.session.get(LedgerCase, case.id)
        stored.details = {**stored.details, "succeeded_at": an_hour_ago.replace(tzinfo=None).isoformat()}
        uow.commit()

    assert 59 * 60 <= gauge(accounts_app, "hirfa_ledger_oldest_payment_not_in_ledger_seconds") < 61 * 60
    assert gauge(accounts_app, "hirfa_ledger_payments_not_in_ledger") == 1
    assert [d["payment_id"] for d in integrity(accounts_app, issue_token)["differences"]] == [lost.payment_id]
    assert check_completeness(context.uow_factory, FakePayments(), grace=GRACE)["cases_resolved"] == 1


def test_the_check_looks_payments_up_in_one_statement_whatever_their_number(accounts_app, ledger):
    """On PostgreSQL its text does not change with the number of payments (an array, not an IN
    list), so the server plans it once per connection, an index probe per payment."""
    context = accounts_app.extensions["hirfa"]
    artisan_id = ledger.artisan_at_tier(3)

    def posted(count: int) -> FakePayments:
        events = [payment_succeeded(artisan_id, 1_000, 0) for _ in range(count)]
        assert all(ledger.deliver(event) for event in events)
        return FakePayments([long_missing(event) for event in events])

    looked_up = []
    for payments in (posted(2), posted(9)):
        with statements(context.engine) as seen:
            assert check_completeness(context.uow_factory, payments, grace=GRACE)["missing"] == 0
        looked_up.append([statement for statement in seen if "journal_entries" in statement])
    assert [len(statements_run) for statements_run in looked_up] == [1, 1]
    if context.engine.dialect.name == "postgresql":
        assert looked_up[0] == looked_up[1]
