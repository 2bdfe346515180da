"""Money events that arrive before what they depend on wait, parked, and are posted once it happens:
a payment before the artisan's tier (or the upgrade that makes room under their cap), a refund or a
dispute before its payment, a dispute's closing before its opening. Nothing is lost, nothing is
taken from money the artisan never received, and the balances end as if the events had come in
order."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from services.accounts.adapters.orm import JournalEntry, LedgerCase, ParkedEvent
from services.accounts.config import AccountsConfig
from services.accounts.service_layer.parked_events import (
    WORKER_RETRY_AFTER,
    ParkedEventsCollector,
    post_all_parked_events,
)
from services.accounts.service_layer.payouts import RequestPayout, request_payout
from shared.auth import Principal
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.config import SANDBOX_BANK_CALLBACK_SECRET
from shared.db import utcnow
from shared.ids import new_id
from shared.partner_ports import PartnerRegistry
from tests.fakes import FakeTransferBank
from tests.integration.test_ledger_postings import assert_ledger_sound, release_all
from tests.ledger_support import (
    MARKETPLACE,
    LedgerDriver,
    bank_account_linked,
    dispute_closed,
    dispute_opened,
    payment_succeeded,
    refund_succeeded,
    registered,
    tier_changed,
)
from tests.support import collected

PARTNER_BANK = AccountsConfig.payout_partner_bank
OPERATOR = Principal(
    client_id="cli_test_operator",
    role=Role.OPERATOR,
    scopes=ROLE_SCOPES[Role.OPERATOR],
    token_id="tok_parked_events",
)


@pytest.fixture
def accounts_bank_partners() -> PartnerRegistry:
    """An in-memory bank, for the one test here that pays out."""
    return PartnerRegistry({PARTNER_BANK: FakeTransferBank(SANDBOX_BANK_CALLBACK_SECRET)})


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


def cases(ledger) -> list[tuple[str, str, str]]:
    """(kind, status, cause id) of every ledger case, oldest first."""
    with ledger.context.session_factory() as session:
        return [
            (case.kind, case.status, case.cause_id)
            for case in session.scalars(sa.select(LedgerCase).order_by(LedgerCase.created_at, LedgerCase.id))
        ]


def parked(ledger) -> list[str]:
    with ledger.context.session_factory() as session:
        return list(session.scalars(sa.select(ParkedEvent.event_id).order_by(ParkedEvent.seq)))


def posted_causes(ledger) -> list[tuple[str, str]]:
    with ledger.context.session_factory() as session:
        return [
            tuple(row)
            for row in session.execute(
                sa.select(JournalEntry.cause, JournalEntry.cause_id).order_by(
                    JournalEntry.posted_at, JournalEntry.id
                )
            )
        ]


def test_a_payment_before_the_artisans_tier_waits_for_it_then_posts(ledger):
    artisan_id = new_id("art")
    payment = payment_succeeded(artisan_id, 10_000, 1_000)
    assert ledger.deliver(payment) is True  # handled: parked
    assert ledger.shown("artisan", artisan_id, "pending") == 0
    assert parked(ledger) == [payment.id]
    assert cases(ledger) == [("kyc_tier_unknown", "waiting", payment.data["payment_id"])]

    ledger.deliver(registered(artisan_id))  # tier 0, cap 0: still nowhere to put it
    assert parked(ledger) == [payment.id]
    assert cases(ledger) == [("tier_cap_exceeded", "waiting", payment.data["payment_id"])]
    ledger.deliver(tier_changed(artisan_id, 3, version=1))

    assert parked(ledger) == []
    assert ledger.shown("artisan", artisan_id, "pending") == 9_000
    assert ledger.shown("platform", "platform", "gateway_receivable:m2t") == 10_000
    assert cases(ledger) == [("tier_cap_exceeded", "resolved", payment.data["payment_id"])]
    with ledger.context.session_factory() as session:
        entry = session.scalar(sa.select(JournalEntry).where(JournalEntry.cause == "payment"))
        assert entry.cause_event_id == payment.id  # posted under the event it came from
    # A redelivery of the payment is a no-op: it was handled when it was parked.
    assert ledger.deliver(payment) is False
    assert_ledger_sound(ledger)


def test_the_workers_metrics_show_what_is_parked_and_how_long_the_oldest_has_waited(ledger):
    metrics = ParkedEventsCollector(ledger.context.uow_factory)
    assert collected(metrics) == {("hirfa_ledger_oldest_parked_event_seconds", ()): 0}

    artisan_id, other_artisan = new_id("art"), new_id("art")
    ledger.deliver(payment_succeeded(artisan_id, 10_000, 1_000))  # before the artisan's tier
    ledger.deliver(registered(other_artisan))  # tier 0, cap 0: no room
    ledger.deliver(payment_succeeded(other_artisan, 5_000, 500))
    with ledger.context.uow_factory() as uow:
        uow.session.execute(sa.update(ParkedEvent).values(parked_at=utcnow() - dt.timedelta(hours=2)))
        uow.commit()
    shown = collected(metrics)
    assert shown[("hirfa_ledger_parked_events", (("waiting_for", "kyc_tier_unknown"),))] == 1
    assert shown[("hirfa_ledger_parked_events", (("waiting_for", "tier_cap_exceeded"),))] == 1
    assert 7200 <= shown[("hirfa_ledger_oldest_parked_event_seconds", ())] < 7260

    ledger.deliver(registered(artisan_id))
    for artisan in (artisan_id, other_artisan):  # tier 3: room for both
        ledger.deliver(tier_changed(artisan, 3, version=1))
    assert parked(ledger) == []
    assert collected(metrics) == {("hirfa_ledger_oldest_parked_event_seconds", ()): 0}
    assert_ledger_sound(ledger)


def test_a_payment_waiting_for_the_tier_then_for_room_says_so_in_its_case(ledger):
    artisan_id = new_id("art")
    payment = payment_succeeded(artisan_id, 30_000, 0)
    ledger.deliver(payment)
    assert cases(ledger) == [("kyc_tier_unknown", "waiting", payment.data["payment_id"])]
    ledger.deliver(registered(artisan_id))
    ledger.deliver(tier_changed(artisan_id, 1, version=1))  # 200 MAD: still too much for it
    assert cases(ledger) == [("tier_cap_exceeded", "waiting", payment.data["payment_id"])]
    ledger.deliver(tier_changed(artisan_id, 2, version=2, previous=1))
    assert cases(ledger) == [("tier_cap_exceeded", "resolved", payment.data["payment_id"])]
    assert ledger.shown("artisan", artisan_id, "pending") == 30_000
    assert_ledger_sound(ledger)


def test_a_payment_above_the_old_cap_posts_when_the_upgrade_arrives(ledger):
    artisan_id = ledger.artisan_at_tier(1)  # 200 MAD
    first, second = payment_succeeded(artisan_id, 15_000, 0), payment_succeeded(artisan_id, 10_000, 0)
    ledger.deliver(first)
    ledger.deliver(second)  # payments already knew tier 2; accounts has not heard yet
    assert ledger.shown("artisan", artisan_id, "pending") == 15_000
    assert cases(ledger) == [("tier_cap_exceeded", "waiting", second.data["payment_id"])]

    ledger.deliver(tier_changed(artisan_id, 2, version=2, previous=1))
    assert ledger.shown("artisan", artisan_id, "pending") == 25_000
    assert cases(ledger) == [("tier_cap_exceeded", "resolved", second.data["payment_id"])]
    assert parked(ledger) == []
    assert_ledger_sound(ledger)


def test_a_refund_before_its_payment_waits_and_the_balances_end_as_in_order(ledger):
    in_order, reordered = ledger.artisan_at_tier(3), ledger.artisan_at_tier(3)
    for artisan_id, refund_first in ((in_order, False), (reordered, True)):
        payment = payment_succeeded(artisan_id, 10_000, 1_000)
        refund = refund_succeeded(artisan_id, payment.data["payment_id"], 10_000, 1_000)
        for event in [refund, payment] if refund_first else [payment, refund]:
            ledger.deliver(event)
    # Nothing was taken from the marketplace reserve for money the artisan never had.
    assert ledger.shown("marketplace", MARKETPLACE, "reserve") == 0
    for artisan_id in (in_order, reordered):
        assert (
            ledger.shown("artisan", artisan_id, "pending"),
            ledger.shown("artisan", artisan_id, "available"),
        ) == (0, 0)
    release_all(ledger)
    assert ledger.shown("artisan", reordered, "available") == 0
    assert [cause for cause, _ in posted_causes(ledger)] == ["payment", "refund", "payment", "refund"]
    assert [(kind, status) for kind, status, _ in cases(ledger)] == [("payment_not_posted", "resolved")]
    assert_ledger_sound(ledger)


def test_a_dispute_closed_before_it_was_opened_and_opened_before_its_payment(ledger):
    artisan_id = ledger.artisan_at_tier(3)
    payment = payment_succeeded(artisan_id, 10_000, 0)
    opened = dispute_opened(artisan_id, payment.data["payment_id"], 4_000)
    closed = dispute_closed(artisan_id, payment.data["payment_id"], opened.data["dispute_id"], 4_000, "won")
    ledger.deliver(closed)
    ledger.deliver(opened)
    assert parked(ledger) == [closed.id, opened.id]
    assert ledger.shown("platform", "platform", "disputes_held") == 0

    ledger.deliver(payment)
    assert parked(ledger) == []
    # Opened, then won: the money is back where it was, and nothing stays held.
    assert ledger.shown("platform", "platform", "disputes_held") == 0
    assert ledger.shown("artisan", artisan_id, "pending") == 10_000
    assert [cause for cause, _ in posted_causes(ledger)] == ["payment", "dispute", "dispute"]
    assert {(kind, status) for kind, status, _ in cases(ledger)} == {
        ("dispute_not_opened", "resolved"),
        ("payment_not_posted", "resolved"),
    }
    release_all(ledger)
    assert ledger.shown("artisan", artisan_id, "available") == 10_000
    assert_ledger_sound(ledger)


def test_a_refund_of_a_payment_waiting_for_room_waits_with_it(ledger):
    artisan_id = ledger.artisan_at_tier(1)
    ledger.deliver(payment_succeeded(artisan_id, 20_000, 0))  # the cap is reached
    over = payment_succeeded(artisan_id, 5_000, 0)
    refund = refund_succeeded(artisan_id, over.data["payment_id"], 5_000, 0)
    ledger.deliver(over)
    ledger.deliver(refund)
    # Not taken from the artisan's other money: the refunded payment was never credited.
    assert ledger.shown("artisan", artisan_id, "pending") == 20_000
    assert ledger.shown("marketplace", MARKETPLACE, "reserve") == 0
    assert parked(ledger) == [over.id, refund.id]

    ledger.deliver(tier_changed(artisan_id, 2, version=2, previous=1))
    assert parked(ledger) == []
    assert ledger.shown("artisan", artisan_id, "pending") == 20_000
    assert ledger.shown("platform", "platform", "gateway_receivable:m2t") == 20_000
    assert_ledger_sound(ledger)


def test_the_worker_posts_a_capped_payment_once_a_payout_makes_room(ledger):
    artisan_id = ledger.artisan_at_tier(1)
    ledger.deliver(bank_account_linked(artisan_id))
    ledger.deliver(payment_succeeded(artisan_id, 18_000, 0))
    waiting = payment_succeeded(artisan_id, 5_000, 0)
    ledger.deliver(waiting)
    assert post_all_parked_events(ledger.context.uow_factory, ledger.handlers) == 0  # still no room
    release_all(ledger)
    request_payout(
        ledger.context.uow_factory(),
        RequestPayout(artisan_id, 10_000, "MAD"),
        OPERATOR,
        ledger.context.payouts,
    )
    # Tried a moment ago: the worker leaves it for a later pass (the consumer would try it at once).
    assert post_all_parked_events(ledger.context.uow_factory, ledger.handlers) == 0
    later = utcnow() + WORKER_RETRY_AFTER + dt.timedelta(seconds=1)
    assert post_all_parked_events(ledger.context.uow_factory, ledger.handlers, now=later) == 1
    assert parked(ledger) == []
    assert (
        ledger.shown("artisan", artisan_id, "available"),
        ledger.shown("artisan", artisan_id, "pending"),
    ) == (8_000, 5_000)
    assert cases(ledger) == [("tier_cap_exceeded", "resolved", waiting.data["payment_id"])]
    assert_ledger_sound(ledger)


def test_a_won_dispute_whose_return_would_pass_the_cap_waits_in_disputes_held(ledger):
    artisan_id = ledger.artisan_at_tier(1)
    first = payment_succeeded(artisan_id, 10_000, 0)
    ledger.deliver(first)
    opened = dispute_opened(artisan_id, first.data["payment_id"], 10_000)
    ledger.deliver(opened)
    ledger.deliver(payment_succeeded(artisan_id, 15_000, 0))  # fits while the dispute holds 10,000
    won = dispute_closed(artisan_id, first.data["payment_id"], opened.data["dispute_id"], 10_000, "won")
    ledger.deliver(won)
    assert ledger.shown("platform", "platform", "disputes_held") == 10_000
    assert parked(ledger) == [won.id]
    assert cases(ledger)[-1] == ("tier_cap_exceeded", "waiting", opened.data["dispute_id"])

    ledger.deliver(tier_changed(artisan_id, 2, version=2, previous=1))
    assert ledger.shown("platform", "platform", "disputes_held") == 0
    assert ledger.shown("artisan", artisan_id, "pending") == 25_000
    assert_ledger_sound(ledger)


def test_a_parked_event_that_breaks_does_not_stop_the_others(ledger, monkeypatch):
    artisan_id = new_id("art")
    broken, fine = payment_succeeded(artisan_id, 1_000, 0), payment_succeeded(artisan_id, 2_000, 0)
    ledger.deliver(broken)
    ledger.deliver(fine)
    with ledger.context.session_factory.begin() as session:
        row = session.scalar(sa.select(ParkedEvent).where(ParkedEvent.event_id == broken.id))
        row.envelope = {**row.envelope, "data": {**row.envelope["data"], "amount": "not money"}}
    ledger.deliver(registered(artisan_id))
    ledger.deliver(tier_changed(artisan_id, 3, version=1))
    assert parked(ledger) == [broken.id]
    assert ledger.shown("artisan", artisan_id, "pending") == 2_000
    with ledger.context.session_factory() as session:
        assert session.scalar(sa.select(ParkedEvent.attempts).where(ParkedEvent.event_id == broken.id)) >= 1
    assert_ledger_sound(ledger)
