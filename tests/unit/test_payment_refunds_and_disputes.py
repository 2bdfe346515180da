"""Refunds and disputes as tables, what is left to refund of a payment, and the commission given back
with a refund, without a database."""

from __future__ import annotations

import pytest

from services.payments.domain.disputes import BLOCKING_REFUNDS, DISPUTE_TRANSITIONS, dispute_moves
from services.payments.domain.gateway import DisputeStatus, RefundStatus
from services.payments.domain.refunds import (
    REFUND_TRANSITIONS,
    RefundRoom,
    proportional_fee,
    refund_moves,
    refund_room,
)


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


def test_what_is_left_to_refund_counts_the_pending_refunds_as_given_back():
    room = refund_room(
        captured=10_000,
        refunded=3_000,
        pending_amount=2_000,
        application_fee=1_000,
        fee_refunded=300,
        pending_fee=200,
    )
    assert room == RefundRoom(given_back=5_000, refundable=5_000, fee_given_back=500, fee_left=500)


def test_a_payment_refunded_in_full_leaves_nothing():
    room = refund_room(
        captured=10_000,
        refunded=8_000,
        pending_amount=2_000,
        application_fee=1_000,
        fee_refunded=800,
        pending_fee=200,
    )
    assert (room.refundable, room.fee_left) == (0, 0)


def test_nothing_refunded_leaves_the_whole_capture_and_commission():
    room = refund_room(
        captured=7_000, refunded=0, pending_amount=0, application_fee=700, fee_refunded=0, pending_fee=0
    )
    assert room == RefundRoom(given_back=0, refundable=7_000, fee_given_back=0, fee_left=700)


@pytest.mark.parametrize(
    ("fee", "amount", "fits"),
    [
        (500, 5_000, True),  # exactly the commission left
        (501, 5_000, False),  # more than the commission left
        (300, 300, True),  # exactly the refund
        (301, 300, False),  # more than the refund itself
        (0, 1, True),
    ],
)
def test_a_commission_refund_fits_under_what_is_left_and_the_refund(fee, amount, fits):
    room = refund_room(
        captured=10_000,
        refunded=3_000,
        pending_amount=2_000,
        application_fee=1_000,
        fee_refunded=300,
        pending_fee=200,
    )
    assert room.fee_fits(fee, amount) is fits
