"""A payout's ledger entries and its moves, without a database."""

from __future__ import annotations

import pytest

from services.accounts.domain.ledger import Line, artisan, bank, check_balanced, platform
from services.accounts.domain.payouts import PayoutStatus, PayoutStep, advances, step_lines


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
