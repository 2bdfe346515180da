"""Payments' money events posted to the ledger: entries, stored balances, holds, refunds with a
reserve shortfall, disputes, and a payment above the cap kept waiting."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from services.accounts.adapters.orm import JournalEntry, JournalLine, LedgerAccount, LedgerCase, PendingHold
from services.accounts.service_layer.money_events import release_due_holds
from tests.ledger_support import (
    MARKETPLACE,
    LedgerDriver,
    dispute_closed,
    dispute_opened,
    payment_succeeded,
    refund_succeeded,
)


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


def entries(ledger, **where) -> list[JournalEntry]:
    with ledger.context.session_factory() as session:
        query = sa.select(JournalEntry).order_by(JournalEntry.posted_at, JournalEntry.id)
        for name, value in where.items():
            query = query.where(getattr(JournalEntry, name) == value)
        return list(session.scalars(query))


def lines_of(ledger, entry_id: str) -> dict[tuple[str, str], int]:
    with ledger.context.session_factory() as session:
        rows = session.execute(
            sa.select(LedgerAccount.owner_type, LedgerAccount.kind, JournalLine.amount)
            .join(LedgerAccount, LedgerAccount.id == JournalLine.account_id)
            .where(JournalLine.entry_id == entry_id)
        ).all()
    return {(owner_type, kind): amount for owner_type, kind, amount in rows}


def assert_ledger_sound(ledger) -> None:
    with ledger.context.session_factory() as session:
        assert session.scalar(sa.select(sa.func.coalesce(sa.func.sum(JournalLine.amount), 0))) == 0
        sums = dict(
            session.execute(
                sa.select(JournalLine.account_id, sa.func.sum(JournalLine.amount)).group_by(
                    JournalLine.account_id
                )
            ).all()
        )
        for account in session.scalars(sa.select(LedgerAccount)):
            assert account.balance == sums.get(account.id, 0), account.kind
            if account.owner_type == "artisan":
                assert -account.balance >= 0


def release_all(ledger) -> int:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    return release_due_holds(ledger.context.uow_factory, now=later)


def test_a_payment_credits_pending_and_commission(ledger):
    artisan_id = ledger.artisan_at_tier(3)
    event = payment_succeeded(artisan_id, 10_000, 1_000)
    assert ledger.deliver(event) is True
    [entry] = entries(ledger, cause="payment")
    assert entry.cause_id == event.data["payment_id"] and entry.cause_event_id == event.id
    assert lines_of(ledger, entry.id) == {
        ("platform", "gateway_receivable:m2t"): 10_000,
        ("artisan", "pending"): -9_000,
        ("marketplace", "commission"): -1_000,
    }
    assert ledger.shown("artisan", artisan_id, "pending") == 9_000
    assert ledger.shown("marketplace", MARKETPLACE, "commission") == 1_000
    assert ledger.deliver(event) is False  # redelivered: the inbox drops it
    assert len(entries(ledger, cause="payment")) == 1
    assert_ledger_sound(ledger)


def test_the_same_payment_under_another_event_id_is_not_posted_twice(ledger):
    artisan_id = ledger.artisan_at_tier(3)
    first = payment_succeeded(artisan_id, 5_000, 500)
    again = payment_succeeded(artisan_id, 5_000, 500, payment_id=first.data["payment_id"])
    ledger.deliver(first)
    ledger.deliver(again)
    assert len(entries(ledger, cause="payment")) == 1
    assert ledger.shown("artisan", artisan_id, "pending") == 4_500


def test_release_moves_due_holds_to_available_once(ledger):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 1_000))
    assert release_due_holds(ledger.context.uow_factory) == 0  # not due yet
    assert release_all(ledger) == 1
    assert (
        ledger.shown("artisan", artisan_id, "pending"),
        ledger.shown("artisan", artisan_id, "available"),
    ) == (0, 9_000)
    assert release_all(ledger) == 0
    assert len(entries(ledger, cause="release")) == 1
    assert_ledger_sound(ledger)


def test_a_refund_is_the_reverse_with_proportional_commission(ledger):
    artisan_id = ledger.artisan_at_tier(3)
    payment = payment_succeeded(artisan_id, 10_000, 1_000)
    ledger.deliver(payment)
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 4_000, 400))
    [refund] = entries(ledger, cause="refund")
    assert lines_of(ledger, refund.id) == {
        ("platform", "gateway_receivable:m2t"): -4_000,
        ("marketplace", "commission"): 400,
        ("artisan", "pending"): 3_600,
    }
    assert ledger.shown("artisan", artisan_id, "pending") == 5_400
    release_all(ledger)
    assert ledger.shown("artisan", artisan_id, "available") == 5_400  # only what is left is released
    assert_ledger_sound(ledger)


def test_a_refund_larger_than_the_artisans_balance_is_covered_by_the_reserve(ledger):
    artisan_id = ledger.artisan_at_tier(3)
    payment = payment_succeeded(artisan_id, 10_000, 1_000)
    ledger.deliver(payment)
    # Another artisan's sale at the same gateway: the refunds below pass this payment (the test's
    # shortcut), never what the gateway holds, which may not go below zero (the integrity check).
    ledger.deliver(payment_succeeded(ledger.artisan_at_tier(3), 10_000, 1_000))
    release_all(ledger)
    # The artisan has spent part of it: simulate with a second artisan-side debit via a dispute
    # on another payment… simpler: a full refund after a partial one already taken from available.
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 6_000, 600))
    assert ledger.shown("artisan", artisan_id, "available") == 3_600
    ledger.deliver(refund_succeeded(artisan_id, payment.data["payment_id"], 6_000, 0))
    # 6,000 owed by the artisan, who holds 3,600: the marketplace reserve covers 2,400, visibly.
    assert ledger.shown("artisan", artisan_id, "available") == 0
    assert ledger.shown("marketplace", MARKETPLACE, "reserve") == -2_400
    last = entries(ledger, cause="refund")[-1]
    assert lines_of(ledger, last.id)[("marketplace", "reserve")] == 2_400
    assert "reserve" in last.description
    assert_ledger_sound(ledger)


def test_disputes_hold_then_release_or_debit(ledger):
    artisan_id = ledger.artisan_at_tier(3)
    won, lost = payment_succeeded(artisan_id, 10_000, 1_000), payment_succeeded(artisan_id, 8_000, 0)
    ledger.deliver(won)
    ledger.deliver(lost)
    opened_won = dispute_opened(artisan_id, won.data["payment_id"], 5_000)
    opened_lost = dispute_opened(artisan_id, lost.data["payment_id"], 8_000)
    ledger.deliver(opened_won)
    ledger.deliver(opened_lost)
    assert ledger.shown("artisan", artisan_id, "pending") == 17_000 - 13_000
    assert ledger.shown("platform", "platform", "disputes_held") == 13_000
    ledger.deliver(
        dispute_closed(artisan_id, won.data["payment_id"], opened_won.data["dispute_id"], 5_000, "won")
    )
    ledger.deliver(
        dispute_closed(artisan_id, lost.data["payment_id"], opened_lost.data["dispute_id"], 8_000, "lost")
    )
    assert ledger.shown("platform", "platform", "disputes_held") == 0
    assert ledger.shown("artisan", artisan_id, "pending") == 9_000
    assert ledger.shown("platform", "platform", "gateway_receivable:m2t") == 18_000 - 8_000
    release_all(ledger)
    assert ledger.shown("artisan", artisan_id, "available") == 9_000
    assert_ledger_sound(ledger)


def test_a_payment_above_the_cap_is_not_posted_but_waits_in_a_case(ledger):
    artisan_id = ledger.artisan_at_tier(1)  # cap 200 MAD = 20,000 centimes
    ledger.deliver(payment_succeeded(artisan_id, 15_000, 0))
    over = payment_succeeded(artisan_id, 10_000, 0)
    assert (
        ledger.deliver(over) is True
    )  # handled: parked, not posted (tests/integration/test_parked_events.py)
    assert ledger.shown("artisan", artisan_id, "pending") == 15_000
    with ledger.context.session_factory() as session:
        [case] = session.scalars(sa.select(LedgerCase)).all()
        assert (case.kind, case.cause_id, case.status) == (
            "tier_cap_exceeded",
            over.data["payment_id"],
            "waiting",
        )
        assert session.get(PendingHold, over.data["payment_id"]) is None
    assert_ledger_sound(ledger)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE journal_lines SET amount = amount + 1",
        "DELETE FROM journal_lines",
        "UPDATE journal_entries SET description = 'edited'",
        "DELETE FROM journal_entries",
        "TRUNCATE journal_lines",
        "TRUNCATE journal_entries, journal_lines",
    ],
)
def test_the_database_refuses_to_change_posted_entries(ledger, statement):
    if statement.startswith("TRUNCATE") and ledger.context.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 1_000, 100))
    with pytest.raises(sa.exc.DBAPIError, match="immutable"):
        with ledger.context.engine.begin() as connection:
            connection.exec_driver_sql(statement)
    assert_ledger_sound(ledger)
    assert len(entries(ledger, cause="payment")) == 1
