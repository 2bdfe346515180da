"""An artisan's statement read page by page over a history of every kind of movement: payments,
refunds, releases, a reversal and payouts. Each page opens at the balance the previous one closed
at, each line's running balance is the one before it plus its amount, and no page sums the history
before it: its opening balance is the balance stored with the line before it. The integrity check
catches a line whose stored balance is wrong."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from services.accounts.adapters.orm import JournalEntry, JournalLine, LedgerAccount
from services.accounts.service_layer.money_events import release_due_holds
from shared.auth.scopes import Role
from shared.config import SANDBOX_BANK_CALLBACK_SECRET
from shared.db import utcnow
from shared.ids import new_id
from shared.partner_ports import PartnerRegistry
from tests.fakes import FakeTransferBank
from tests.ledger_support import RIB, LedgerDriver, bank_account_linked, payment_succeeded, refund_succeeded

PARTNER_BANK = "banque_populaire"
OPERATOR = "cli_test_operator"


@pytest.fixture
def bank() -> FakeTransferBank:
    return FakeTransferBank(SANDBOX_BANK_CALLBACK_SECRET)


@pytest.fixture
def accounts_bank_partners(bank) -> PartnerRegistry:
    return PartnerRegistry({PARTNER_BANK: bank})


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def client(accounts_app):
    return accounts_app.test_client()


@pytest.fixture
def operator(issue_token):
    def headers() -> dict[str, str]:
        return {
            "Authorization": "Bearer " + issue_token(Role.OPERATOR, client_id=OPERATOR),
            "Idempotency-Key": uuid.uuid4().hex,
        }

    return headers


def get_ok(client, path: str, headers: dict, **query) -> dict:
    response = client.get(path, headers=headers, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def release_all(ledger: LedgerDriver) -> None:
    release_due_holds(ledger.context.uow_factory, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=30))


def read_in_pages(client, headers: dict, artisan_id: str, account: str, limit: int, **query) -> list[dict]:
    pages, cursor = [], None
    while True:
        page = get_ok(
            client,
            f"/v1/artisans/{artisan_id}/transactions",
            headers,
            account=account,
            limit=limit,
            **query,
            **({"starting_after": cursor} if cursor else {}),
        )
        pages.append(page)
        if not page["has_more"]:
            return pages
        cursor = page["next_cursor"]


def assert_pages_run_on(pages: list[dict], opening: int) -> int:
    """Every page opens at the balance the previous one closed at, and every line's running
    balance is the previous one plus its amount; returns the last running balance."""
    balance = opening
    for page in pages:
        assert page["opening_balance"]["amount"] == balance
        for line in page["data"]:
            balance += line["amount"]["amount"]
            assert line["running_balance"]["amount"] == balance, line
    return balance


@pytest.fixture
def long_history(client, operator, ledger) -> str:
    """An artisan with payments, refunds from pending and from available, releases, a reversed
    payment, a payout paid out and one more payment after it."""
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(bank_account_linked(artisan_id, RIB))
    payments = [payment_succeeded(artisan_id, 1_000 * (i + 2), 100 * (i + 1)) for i in range(7)]
    for payment in payments:
        ledger.deliver(payment)
    ledger.deliver(refund_succeeded(artisan_id, payments[0].data["payment_id"], 1_000, 100))
    with ledger.context.session_factory() as session:
        reversed_payment = session.scalar(
            sa.select(JournalEntry.id).where(JournalEntry.cause_id == payments[6].data["payment_id"])
        )
    reversal = client.post(
        "/v1/ledger/adjustments",
        json={"reason": "Posted for a payment the gateway voided", "reverses_entry_id": reversed_payment},
        headers=operator(),
    )
    assert reversal.status_code == 201, reversal.json
    release_all(ledger)
    ledger.deliver(refund_succeeded(artisan_id, payments[1].data["payment_id"], 2_000, 200))
    payout = client.post(
        "/v1/payouts", json={"artisan_id": artisan_id, "amount": 4_000, "currency": "MAD"}, headers=operator()
    )
    assert payout.status_code == 201, payout.json
    ledger.deliver(payment_succeeded(artisan_id, 3_000, 300))
    release_all(ledger)
    return artisan_id


@pytest.mark.parametrize("account", ["pending", "available"])
@pytest.mark.parametrize("limit", [1, 2, 3, 100])
def test_every_page_opens_where_the_previous_one_closed(
    client, operator, ledger, long_history, account, limit
):
    headers = operator()
    pages = read_in_pages(client, headers, long_history, account, limit)
    closing = assert_pages_run_on(pages, opening=0)

    balance = get_ok(client, f"/v1/artisans/{long_history}/balance", headers)
    assert closing == balance[account]["amount"]
    whole = get_ok(client, f"/v1/artisans/{long_history}/transactions", headers, account=account, limit=100)
    assert [line for page in pages for line in page["data"]] == whole["data"]
    causes = {line["cause"] for line in whole["data"]}
    assert causes >= (
        {"payment", "refund", "release", "adjustment"}
        if account == "pending"
        else {"release", "refund", "payout"}
    )


def test_a_date_range_opens_at_the_balance_before_it_and_pages_within_it(client, operator, long_history):
    headers = operator()
    whole = get_ok(client, f"/v1/artisans/{long_history}/transactions", headers, account="pending", limit=100)
    lines = whole["data"]
    assert len(lines) >= 12
    start, end = lines[4]["posted_at"], lines[10]["posted_at"]

    pages = read_in_pages(client, headers, long_history, "pending", 2, **{"from": start, "to": end})
    in_range = [line for line in lines if start <= line["posted_at"] < end]
    assert [line for page in pages for line in page["data"]] == in_range
    before = [line for line in lines if line["posted_at"] < start]
    assert (
        assert_pages_run_on(pages, opening=before[-1]["running_balance"]["amount"])
        == (in_range[-1]["running_balance"]["amount"])
    )


def test_a_deep_page_costs_no_sum_over_the_history_before_it(client, operator, ledger, long_history):
    """The page and its opening balance are lookups by line: however long the history, a page
    sends the same statements, and none of them adds up lines."""
    headers = operator()
    path = f"/v1/artisans/{long_history}/transactions"
    lines = get_ok(client, path, headers, account="pending", limit=100)["data"]
    statements: list[str] = []

    def record(_connection, _cursor, statement, *_args) -> None:
        statements.append(statement)

    engine = ledger.context.engine

    def page_after(line: dict) -> list[str]:
        statements.clear()
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            page = get_ok(client, path, headers, account="pending", limit=2, starting_after=line["id"])
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        assert page["opening_balance"] == line["running_balance"]
        return list(statements)

    shallow, deep = page_after(lines[0]), page_after(lines[-3])
    assert len(shallow) == len(deep)
    reading_lines = [statement for statement in deep if "journal_lines" in statement]
    assert reading_lines and not any("sum(" in statement.lower() for statement in reading_lines)


@pytest.mark.corrupts_ledger
def test_integrity_catches_a_line_whose_balance_after_is_wrong(client, operator, ledger):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 5_000, 500))
    with ledger.context.session_factory() as session:
        pending, commission = (
            session.scalar(
                sa.select(LedgerAccount.id).where(LedgerAccount.owner_id == owner, LedgerAccount.kind == kind)
            )
            for owner, kind in ((artisan_id, "pending"), ("cli_test_marketplace", "commission"))
        )
    # A balanced entry written behind the posting code's back, the stored balances moved to match
    # its lines: only the pending line's balance_after is wrong (-4,400 is what it should say).
    entry_id = new_id("je")
    with ledger.context.session_factory() as session:
        session.add(
            JournalEntry(
                id=entry_id,
                cause="adjustment",
                cause_id="manual-3",
                posting_key="manual:3",
                description="by hand",
            )
        )
        session.flush()
        for account, amount, after in ((pending, 100, -4_300), (commission, -100, -600)):
            session.add(
                JournalLine(
                    entry_id=entry_id,
                    account_id=account,
                    amount=amount,
                    currency="MAD",
                    posted_at=utcnow(),
                    balance_after=after,
                )
            )
        for account, amount in ((pending, 100), (commission, -100)):
            session.execute(
                sa.update(LedgerAccount)
                .where(LedgerAccount.id == account)
                .values(balance=LedgerAccount.balance + amount)
            )
        session.commit()
        wrong_line = session.scalar(
            sa.select(JournalLine.id).where(
                JournalLine.entry_id == entry_id, JournalLine.account_id == pending
            )
        )

    report = get_ok(client, "/v1/ledger/integrity", operator())
    assert report["ok"] is False
    assert sorted(report["differences"], key=lambda difference: difference["check"]) == [
        {
            "check": "balance_after_matches_lines",
            "account_id": pending,
            "line_id": wrong_line,
            "currency": "MAD",
            "expected": -4_400,
            "actual": -4_300,
        },
        {
            "check": "stored_balance_matches_last_line",
            "account_id": pending,
            "currency": "MAD",
            "expected": -4_300,
            "actual": -4_400,
        },
    ]
