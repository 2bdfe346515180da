"""How much SQL a ledger posting costs, and the shortcuts that keep it low staying correct.

A regression guard on statement counts, not a timing test: a payment's posting is a locking SELECT
and one write on PostgreSQL (three writes elsewhere); a lone payment event through the consumer is
seven statements on PostgreSQL (plus, once per batch, the inbox check, the parked events, and the
platform's fee terms of each marketplace); and a consumer batch of payments, posted set-based
(``service_layer/payment_batches.py``), thirteen statements on PostgreSQL whatever its size. A
change that adds a round trip fails here; lower the numbers when a change removes one.
``python -m tests.bench`` measures the throughput these numbers buy.

The shortcuts: a transaction remembers which artisans have accounts (forgotten on any rollback, so
an opening that was rolled back is done again), and account objects loaded before a posting show
the balances it wrote.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from services.accounts.adapters.ledger import account_for
from services.accounts.adapters.orm import JournalEntry, LedgerAccount
from services.accounts.domain.artisan_rules import BalanceRuleViolation
from services.accounts.domain.ledger import artisan, gateway_receivable, marketplace
from services.accounts.domain.postings import Posting
from services.accounts.service_layer.ledger import open_artisan_accounts
from services.accounts.service_layer.posting import post
from shared.ids import new_id
from tests.integration.test_ledger_postings import assert_ledger_sound
from tests.ledger_support import MARKETPLACE, LedgerDriver, payment_succeeded

# Statements of one payment, by backend: (its posting alone, its event alone in a batch).
# PostgreSQL: lock + write; event: SAVEPOINT, lock, write, inbox, outbox, pending hold, RELEASE.
# Elsewhere the write is three statements (entry, lines, balances).
BUDGET = {"postgresql": (2, 7), "sqlite": (4, 9)}
# Statements of a whole consumer batch of payments, by backend, whatever its size. PostgreSQL: the
# inbox check; SAVEPOINT, the inbox rows, the fee terms (one marketplace), the artisans' accounts
# locked, the posting keys posted already, the shared accounts' ids, the outbox rows, the entries
# with the artisans' lines, their balances and the pending holds, the shared accounts locked, their
# lines and balances, RELEASE; the parked events. Elsewhere each of the two writes is split: the
# holds, the entries, the lines and the balances are four statements, the shared lines and
# balances two.
BATCH_BUDGET = {"postgresql": 13, "sqlite": 17}
BATCH = 10


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@contextlib.contextmanager
def statements(engine: sa.Engine) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` meanwhile (an executemany counts once), but for the
    start of a transaction (SQLite's ``BEGIN IMMEDIATE``), which a batch pays once."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if not statement.startswith("BEGIN"):
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def budget(ledger: LedgerDriver) -> tuple[int, int]:
    return BUDGET[ledger.context.engine.dialect.name]


def payment_posting(artisan_id: str, amount: int, fee: int, payment_id: str) -> Posting:
    """A payment's posting, as the payment handler builds it."""
    return Posting(
        cause="payment",
        cause_id=payment_id,
        posting_key=f"payment:{payment_id}:succeeded",
        description=f"Payment {payment_id}",
        currency="MAD",
        artisan_id=artisan_id,
        lines=(
            (gateway_receivable("m2t"), amount),
            (artisan(artisan_id, "pending"), -(amount - fee)),
            (marketplace(MARKETPLACE, "commission"), -fee),
        ),
    )


def test_a_payment_posting_is_a_lock_and_a_write(ledger):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 1_000))  # the platform's accounts are open
    with ledger.context.uow_factory() as uow:
        with statements(ledger.context.engine) as seen:
            post(uow, payment_posting(artisan_id, 5_000, 500, "pay_counted"))
        uow.commit()
    assert len(seen) <= budget(ledger)[0], seen
    assert ledger.shown("artisan", artisan_id, "pending") == 9_000 + 4_500
    assert_ledger_sound(ledger)


def test_a_lone_payment_event_costs_seven_statements(ledger):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 1_000))
    with statements(ledger.context.engine) as seen:
        results = ledger.consumer.apply_batch([payment_succeeded(artisan_id, 10_000, 1_000)])
    assert [result.outcome.value for result in results] == ["applied"]
    # Once per batch: the inbox check, the artisan's parked events, whether its accounts are open,
    # and the platform's fee terms of the marketplace.
    assert len(seen) <= 4 + budget(ledger)[1], seen
    assert ledger.shown("artisan", artisan_id, "pending") == 2 * 9_000
    assert_ledger_sound(ledger)


@pytest.mark.parametrize("size", [BATCH, 4 * BATCH])
def test_a_batch_of_payments_costs_the_same_few_statements_whatever_its_size(ledger, size):
    artisans = [ledger.artisan_at_tier(3) for _ in range(2)]
    ledger.deliver(payment_succeeded(artisans[0], 10_000, 1_000))
    events = [payment_succeeded(artisans[i % 2], 10_000, 1_000) for i in range(size)]
    with statements(ledger.context.engine) as seen:
        results = ledger.consumer.apply_batch(events)
    assert [result.outcome.value for result in results] == ["applied"] * size
    assert len(seen) <= BATCH_BUDGET[ledger.context.engine.dialect.name], seen
    assert ledger.shown("artisan", artisans[1], "pending") == 9_000 * (size // 2)
    assert_ledger_sound(ledger)


def test_an_account_opening_undone_by_a_rollback_is_done_again(ledger):
    artisan_id = new_id("art")
    with ledger.context.uow_factory() as uow:
        savepoint = uow.session.begin_nested()
        assert open_artisan_accounts(uow, artisan_id, "MAD", cause_event_id=new_id("evt")) is True
        savepoint.rollback()
        uow.discard_events()
        # Not remembered as open: the rollback took the accounts away.
        assert open_artisan_accounts(uow, artisan_id, "MAD", cause_event_id=new_id("evt")) is True
        assert open_artisan_accounts(uow, artisan_id, "MAD", cause_event_id=new_id("evt")) is False
        uow.rollback()
        assert open_artisan_accounts(uow, artisan_id, "MAD", cause_event_id=new_id("evt")) is True
        uow.commit()
    with ledger.context.session_factory() as session:
        kinds = session.scalars(
            sa.select(LedgerAccount.kind).where(LedgerAccount.owner_id == artisan_id)
        ).all()
    assert sorted(kinds) == ["available", "pending"]


def test_a_refused_posting_leaves_no_account_it_opened(ledger):
    artisan_id = ledger.artisan_at_tier(3)
    new_marketplace = "cli_never_paid"
    refused = Posting(
        cause="adjustment",
        cause_id="adj_1",
        posting_key="adjustment:adj_1",
        description="Take what is not there",
        currency="MAD",
        artisan_id=artisan_id,
        lines=((artisan(artisan_id, "available"), 100), (marketplace(new_marketplace, "reserve"), -100)),
    )
    with ledger.context.uow_factory() as uow:
        with pytest.raises(BalanceRuleViolation):
            post(uow, refused)
        assert (
            uow.session.scalar(sa.select(LedgerAccount.id).where(LedgerAccount.owner_id == new_marketplace))
            is None
        )
        # Opened again, for real this time, by a posting that is allowed.
        allowed = Posting(
            cause="adjustment",
            cause_id="adj_2",
            posting_key="adjustment:adj_2",
            description="Top up the reserve",
            currency="MAD",
            lines=((gateway_receivable("m2t"), 100), (marketplace(new_marketplace, "reserve"), -100)),
        )
        post(uow, allowed)
        uow.commit()
    assert ledger.shown("marketplace", new_marketplace, "reserve") == 100
    with ledger.context.session_factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(JournalEntry)) == 1
    assert_ledger_sound(ledger)


def test_accounts_loaded_before_a_posting_show_what_it_wrote(ledger):
    artisan_id = ledger.artisan_at_tier(3)
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 1_000))
    with ledger.context.uow_factory() as uow:
        pending = account_for(uow.session, artisan(artisan_id, "pending"), "MAD")
        assert pending.balance == -9_000
        post(uow, payment_posting(artisan_id, 5_000, 500, "pay_seen"))
        assert pending.balance == -13_500
        uow.commit()
