"""Payments posted set-based (``service_layer/payment_batches.py``): a consumer batch's payments in a
few statements, with every rule of posting them one at a time.

- two consumers of one group given the same events at once (a rebalance hands a partition to the
  second while the first is still applying it) post each payment once;
- a batch with a poison event posts the others and dead-letters that one;
- a batch that would take an artisan over the cap parks exactly the payments that do not fit, in
  order, and leaves what posting them one at a time leaves.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from kafka.structs import TopicPartition

from services.accounts.adapters.orm import (
    InboxMessage,
    JournalEntry,
    LedgerCase,
    OutboxMessage,
    ParkedEvent,
    PendingHold,
)
from services.accounts.service_layer.parked_events import make_after_batch
from shared.events import Event
from shared.events.consumer import EventConsumer, Outcome
from tests.integration.test_consumer_batches import DeadLetters, ScriptedKafka
from tests.integration.test_ledger_postings import assert_ledger_sound
from tests.ledger_support import LedgerDriver, payment_succeeded

ENTRY_POSTED = "accounts.ledger.entry_posted"


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


def consumer(ledger: LedgerDriver, **options) -> EventConsumer:
    """Another member of the accounts consumer group, wired as ``hirfa accounts consume`` wires it."""
    context = ledger.context
    return EventConsumer(
        name=context.config.consumer_group,
        handlers=ledger.handlers,
        uow_factory=context.uow_factory,
        inbox_model=InboxMessage,
        consumer_factory=options.pop("consumer_factory", lambda: None),
        producer_factory=options.pop("producer_factory", lambda: None),
        dead_letter_topic=context.config.dead_letter_topic,
        after_batch=options.pop("after_batch", make_after_batch(ledger.handlers)),
        **options,
    )


def count(ledger: LedgerDriver, model, *where) -> int:
    with ledger.context.session_factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def posted_payments(ledger: LedgerDriver) -> list[str]:
    with ledger.context.session_factory() as session:
        return list(session.scalars(sa.select(JournalEntry.cause_id).where(JournalEntry.cause == "payment")))


def assert_posted_once(ledger: LedgerDriver, payments: list[Event]) -> None:
    """Each payment: one entry, one pending hold, one entry_posted event, one inbox row."""
    expected = sorted(event.data["payment_id"] for event in payments)
    assert sorted(posted_payments(ledger)) == expected
    assert count(ledger, PendingHold) == len(payments)
    assert count(ledger, OutboxMessage, OutboxMessage.event_type == ENTRY_POSTED) == len(payments)
    assert count(ledger, InboxMessage, InboxMessage.event_id.in_([e.id for e in payments])) == len(payments)
    assert_ledger_sound(ledger)


def blocked_on_a_lock(ledger: LedgerDriver) -> bool:
    """Whether another connection of this database waits for a lock (PostgreSQL); elsewhere a
    second writer waits for the first at BEGIN, where nothing shows it: a moment is given."""
    engine = ledger.context.engine
    if engine.dialect.name != "postgresql":
        time.sleep(0.3)
        return True
    with engine.connect() as connection:
        waiting = connection.scalar(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


def test_two_consumers_of_one_group_during_a_rebalance_never_double_post(ledger):
    artisans = [ledger.artisan_at_tier(3) for _ in range(3)]
    payments = [payment_succeeded(artisans[i % 3], 10_000, 1_000) for i in range(12)]
    # The first member polled payments 0-7 and is applying them when the group rebalances: the
    # partition goes to the second member, which reads on from the last committed offset, so it
    # gets 4-7 again (uncommitted yet) and 8-11.
    first_batch, second_batch = payments[:8], payments[4:]
    first_writes, second_started, interleaved = threading.Event(), threading.Event(), threading.Event()
    after_batch = make_after_batch(ledger.handlers)

    def before_committing(uow, applied) -> None:
        after_batch(uow, applied)
        first_writes.set()
        # Hold the commit until the second member is blocked behind this transaction.
        assert second_started.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if blocked_on_a_lock(ledger):
                interleaved.set()
                return
            time.sleep(0.02)

    first = consumer(ledger, batch_size=50, after_batch=before_committing)
    second = consumer(ledger, batch_size=50)
    results: dict[str, list] = {}

    def run_first() -> None:
        results["first"] = first.apply_batch(first_batch)

    thread = threading.Thread(target=run_first)
    thread.start()
    assert first_writes.wait(30)
    second_started.set()
    results["second"] = second.apply_batch(second_batch)
    thread.join(30)

    assert interleaved.is_set()  # the second was waiting behind the first's uncommitted batch
    assert [r.outcome for r in results["first"]] == [Outcome.APPLIED] * 8
    # The overlap was the first's: the second skips it and applies only what is new to it.
    assert [r.outcome for r in results["second"]] == [Outcome.SKIPPED] * 4 + [Outcome.APPLIED] * 4
    assert_posted_once(ledger, payments)


def test_two_consumers_given_overlapping_batches_at_once_post_each_payment_once(ledger):
    artisans = [ledger.artisan_at_tier(3) for _ in range(4)]
    payments = [payment_succeeded(artisans[i % 4], 5_000, 500) for i in range(60)]
    members = [consumer(ledger, batch_size=50), consumer(ledger, batch_size=50)]

    def apply(member: EventConsumer, batch: list[Event], start: threading.Barrier) -> None:
        start.wait(10)
        while True:
            try:
                member.apply_batch(batch)
                return
            except sa_exc.OperationalError:
                continue  # a deadlock victim: the runner rewinds and applies the batch again

    # Rounds of two members applying overlapping slices at the same moment.
    for first, second in [
        (slice(0, 20), slice(10, 30)),
        (slice(25, 45), slice(20, 50)),
        (slice(40, 60), slice(0, 60)),
    ]:
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=apply, args=(member, payments[part], start))
            for member, part in zip(members, (first, second), strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert_posted_once(ledger, payments)


def test_a_batch_with_one_poison_event_posts_the_others_and_dead_letters_that_one(ledger):
    artisans = [ledger.artisan_at_tier(3) for _ in range(4)]
    payments = [payment_succeeded(artisans[i % 3], 10_000, 1_000) for i in range(9)]
    # Valid by its schema, but its entry has no line: the ledger can never post it.
    poison = payment_succeeded(artisans[3], 0, 0)
    stop = threading.Event()
    journal: list = []
    kafka = ScriptedKafka({0: [*payments[:5], poison, *payments[5:]]}, journal, stop)
    letters = DeadLetters()
    member = consumer(
        ledger,
        batch_size=50,
        max_attempts=2,
        consumer_factory=lambda: kafka,
        producer_factory=lambda: letters,
    )
    member.run(stop)

    assert [value for value, _ in letters.sent] == [poison.to_bytes()]
    assert letters.sent[0][1]["error"].startswith(b"UnbalancedEntry")
    assert kafka.committed == {TopicPartition("t", 0): 10}
    assert count(ledger, InboxMessage, InboxMessage.event_id == poison.id) == 0
    assert_posted_once(ledger, payments)


def test_a_batch_over_an_artisans_cap_parks_exactly_the_payments_that_do_not_fit_in_order(ledger, caplog):
    capped = ledger.artisan_at_tier(1)  # cap 20,000 (200 MAD)
    other = ledger.artisan_at_tier(3)
    nets = [8_000, 9_000, 5_000, 3_000, 1, 2_000]  # 17,000 fit; 5,000 does not; 3,000 does; then full
    capped_payments = [payment_succeeded(capped, net + 100, 100) for net in nets]
    other_payments = [payment_succeeded(other, 10_000, 1_000) for _ in range(6)]
    batch = [event for pair in zip(capped_payments, other_payments, strict=True) for event in pair]

    with caplog.at_level("WARNING"):
        results = ledger.consumer.apply_batch(batch)
    assert all(result.outcome is Outcome.APPLIED for result in results)
    assert "set-based apply failed" not in caplog.text  # posted set-based, not one by one

    fitting = [capped_payments[i] for i in (0, 1, 3)] + other_payments
    assert sorted(posted_payments(ledger)) == sorted({e.data["payment_id"] for e in fitting})
    assert ledger.shown("artisan", capped, "pending") == 20_000
    with ledger.context.session_factory() as session:
        parked = session.scalars(sa.select(ParkedEvent).order_by(ParkedEvent.seq)).all()
        assert [p.event_id for p in parked] == [
            capped_payments[2].id,
            capped_payments[4].id,
            capped_payments[5].id,
        ]
        cases = session.scalars(sa.select(LedgerCase).where(LedgerCase.status == "waiting")).all()
        assert sorted(c.event_id for c in cases) == sorted(p.event_id for p in parked)
        assert {c.kind for c in cases} == {"tier_cap_exceeded"}


def test_a_batch_leaves_what_the_same_payments_one_at_a_time_leave(ledger):
    """The set-based form against the handler itself: the same payments (some over the cap, one
    delivered twice), once as a batch, once one by one, for two artisans alike."""

    def outcome(artisan_id: str) -> tuple:
        with ledger.context.session_factory() as session:
            parked = session.scalars(
                sa.select(ParkedEvent.waiting_for)
                .where(ParkedEvent.artisan_id == artisan_id)
                .order_by(ParkedEvent.seq)
            ).all()
            holds = session.scalars(
                sa.select(PendingHold.held)
                .where(PendingHold.artisan_id == artisan_id)
                .order_by(PendingHold.held)
            ).all()
        return (
            ledger.shown("artisan", artisan_id, "pending"),
            len(posted_payments_of(ledger, artisan_id)),
            list(parked),
            list(holds),
        )

    nets = [12_000, 9_000, 7_000, 1_000, 500]
    for mode in ("batch", "one by one"):
        capped = ledger.artisan_at_tier(1)
        events = [payment_succeeded(capped, net + 50, 50) for net in nets]
        events.insert(2, events[1])  # redelivered within the batch
        if mode == "batch":
            ledger.consumer.apply_batch(events)
        else:
            for event in events:
                ledger.consumer.apply_batch([event])
        results = outcome(capped)
        if mode == "batch":
            expected = results
        else:
            assert results == expected
    assert expected[0] == 20_000 and expected[2] == ["tier_cap_exceeded"] * 2


def posted_payments_of(ledger: LedgerDriver, artisan_id: str) -> list[str]:
    with ledger.context.session_factory() as session:
        return list(
            session.scalars(
                sa.select(JournalEntry.cause_id).where(
                    JournalEntry.cause == "payment", JournalEntry.artisan_id == artisan_id
                )
            )
        )
