"""Refunds and disputes as tables, and the commission given back with a refund, without a database."""

from __future__ import annotations

import pytest

from services.payments.domain.disputes import BLOCKING_REFUNDS, DISPUTE_TRANSITIONS, dispute_moves
from services.payments.domain.gateway import DisputeStatus, RefundStatus
from services.payments.domain.refunds import REFUND_TRANSITIONS, proportional_fee, refund_moves


def test_every_refund_and_dispute_state_is_in_its_table():
    assert set(REFUND_TRANSITIONS) == set(RefundStatus)
    assert set(DISPUTE_TRANSITIONS) == set(DisputeStatus)


@pytest.mark.parametrize(
    ("current", "reported", "expected"),
    [
        ("pending", "succeeded", True),
        ("pending", "failed", True),
        ("pending", "pending", False),  # no news
        ("succeeded", "failed", False),  # settled once
        ("failed", "succeeded", False),
        ("succeeded", "succeeded", False),  # a duplicate
    ],
)
def test_only_the_gateway_settles_a_pending_refund_and_only_once(current, reported, expected):
    assert refund_moves(current, reported) is expected


@pytest.mark.parametrize(
    ("current", "reported", "expected"),
    [
        ("open", "won", True),
        ("open", "lost", True),
        ("open", "open", False),
        ("won", "lost", False),
        ("lost", "won", False),
    ],
)
def test_a_dispute_closes_once(current, reported, expected):
    assert dispute_moves(current, reported) is expected


def test_an_open_or_lost_dispute_stands_in_the_way_of_a_refund():
    assert BLOCKING_REFUNDS == {DisputeStatus.OPEN, DisputeStatus.LOST}


def test_the_commission_goes_back_in_proportion_and_whole_with_the_last_refund():
    # 10 000 captured, 1 000 commission: a quarter refunded gives back a quarter of it.
    assert proportional_fee(1_000, 10_000, 2_500, 0, 0) == 250
    # Then the rest in two parts: the last one returns exactly what is left.
    assert proportional_fee(1_000, 10_000, 3_333, 250, 2_500) == 333  # 583 due by now, 250 back
    assert proportional_fee(1_000, 10_000, 4_167, 583, 5_833) == 417  # all of it due: 1 000 in all


def test_the_commission_refunded_never_exceeds_the_refund():
    assert proportional_fee(900, 1_000, 10, 0, 0) == 9
    assert proportional_fee(1_000, 1_000, 1, 0, 999) == 1  # the whole fee is due, but one centime is all
