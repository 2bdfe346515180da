"""A payout's ledger entries and its moves, without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from services.accounts.domain.ledger import Line, artisan, bank, check_balanced, marketplace, platform
from services.accounts.domain.payouts import (
    PayeeType,
    PayoutStatus,
    PayoutStep,
    advances,
    commission_schedule_key,
    payee_account,
    step_lines,
)


@pytest.mark.parametrize(
    ("step", "debit", "credit"),
    [
        (PayoutStep.CREATED, artisan("art_1", "available"), platform("payouts_in_transit")),
        (PayoutStep.PAID, platform("payouts_in_transit"), bank("145")),
        (PayoutStep.FAILED, platform("payouts_in_transit"), artisan("art_1", "available")),
    ],
)
def test_each_step_moves_the_whole_amount(step, debit, credit):
    lines = step_lines(step, artisan_id="art_1", source_bank_code="145", amount=4_000)
    assert lines == ((debit, 4_000), (credit, -4_000))
    check_balanced([Line(str(ref), amount, "MAD") for ref, amount in lines])


def test_a_failed_payout_gives_back_exactly_what_its_creation_took():
    created = dict(step_lines(PayoutStep.CREATED, artisan_id="art_1", source_bank_code="145", amount=999))
    failed = dict(step_lines(PayoutStep.FAILED, artisan_id="art_1", source_bank_code="145", amount=999))
    assert {ref: created[ref] + failed[ref] for ref in created} == {
        artisan("art_1", "available"): 0,
        platform("payouts_in_transit"): 0,
    }


@pytest.mark.parametrize(
    ("current", "target", "moves"),
    [
        (PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT, True),
        (PayoutStatus.PENDING, PayoutStatus.PAID, True),
        (PayoutStatus.IN_TRANSIT, PayoutStatus.FAILED, True),
        (PayoutStatus.IN_TRANSIT, PayoutStatus.PENDING, False),
        (PayoutStatus.PAID, PayoutStatus.FAILED, False),
        (PayoutStatus.FAILED, PayoutStatus.PAID, False),
        (PayoutStatus.PAID, PayoutStatus.PAID, False),
    ],
)
def test_a_payout_only_ever_moves_forward(current, target, moves):
    assert advances(current, target) is moves


def test_a_commission_payout_moves_the_marketplace_commission_through_the_same_steps():
    commission = payee_account(PayeeType.MARKETPLACE, "cli_m")
    assert commission == marketplace("cli_m", "commission")
    created = step_lines(PayoutStep.CREATED, payee=commission, source_bank_code="145", amount=700)
    paid = step_lines(PayoutStep.PAID, payee=commission, source_bank_code="145", amount=700)
    failed = step_lines(PayoutStep.FAILED, payee=commission, source_bank_code="145", amount=700)
    assert created == ((commission, 700), (platform("payouts_in_transit"), -700))
    assert paid == ((platform("payouts_in_transit"), 700), (bank("145"), -700))
    assert failed == ((platform("payouts_in_transit"), 700), (commission, -700))
    assert payee_account(PayeeType.ARTISAN, "art_1") == artisan("art_1", "available")


def test_commission_schedule_keys_have_their_own_namespace():
    now = dt.datetime(2026, 12, 7, 9, tzinfo=dt.UTC)  # a Monday
    assert commission_schedule_key("cli_m", "daily", now) == "auto:marketplace:cli_m:daily:2026-12-07"
    assert commission_schedule_key("cli_m", "weekly", now) == "auto:marketplace:cli_m:weekly:2026-W50"
