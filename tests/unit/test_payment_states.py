"""The payment state table and the rules that read gateway news, without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments.domain.gateway import GatewayTransaction, NextAction, TransactionStatus
from services.payments.domain.payments import (
    FINAL_STATUSES,
    REFUND,
    TRANSITIONS,
    VOID,
    PaymentStatus,
    can_move,
    failure_for,
    gateway_moves,
    rank,
    reversal_for,
    status_for,
)
from services.payments.domain.refunds import proportional_fee

S = PaymentStatus


def transaction(status: TransactionStatus, decline_code: str | None = None) -> GatewayTransaction:
    return GatewayTransaction(
        gateway_reference="tx_1",
        reference="pay_1",
        status=status,
        raw_status=str(status),
        amount=1000,
        currency="MAD",
        decline_code=decline_code,
        next_action=NextAction("wallet_approval", expires_at=1),
    )


def test_final_states_go_nowhere_and_every_state_is_in_the_table():
    assert set(TRANSITIONS) == set(PaymentStatus)
    for final in FINAL_STATUSES:
        assert TRANSITIONS[final] == frozenset()
    assert not can_move("succeeded", "failed")
    assert not can_move("requires_confirmation", "succeeded")  # only through processing
    assert can_move("requires_confirmation", "processing")


@pytest.mark.parametrize(
    ("status", "capture_method", "expected"),
    [
        (TransactionStatus.ACTION_REQUIRED, "automatic", S.REQUIRES_ACTION),
        (TransactionStatus.AUTHORISED, "manual", S.REQUIRES_CAPTURE),
        (TransactionStatus.AUTHORISED, "automatic", S.PROCESSING),
        (TransactionStatus.CAPTURED, "automatic", S.SUCCEEDED),
        (TransactionStatus.DECLINED, "automatic", S.FAILED),
        (TransactionStatus.EXPIRED, "automatic", S.FAILED),
        (TransactionStatus.VOIDED, "manual", S.CANCELED),
    ],
)
def test_every_gateway_status_has_a_payment_status(status, capture_method, expected):
    assert status_for(transaction(status), capture_method) == expected


def test_gateway_news_never_moves_a_payment_backwards():
    # A late "waiting for the wallet" never overwrites succeeded, nor a requires_capture.
    assert not gateway_moves("succeeded", S.REQUIRES_ACTION)
    assert not gateway_moves("requires_capture", S.REQUIRES_ACTION)
    assert not gateway_moves("requires_action", S.PROCESSING)
    assert gateway_moves("requires_action", S.SUCCEEDED)
    # Processing after a confirm is the lowest rank: whatever the gateway says next is progress.
    assert gateway_moves("processing", S.REQUIRES_CAPTURE)
    assert gateway_moves("processing", S.REQUIRES_ACTION)


def test_a_capture_in_flight_is_not_undone_by_a_late_authorised_snapshot():
    assert rank("processing", capturing=True) > rank("requires_capture")
    assert not gateway_moves("processing", S.REQUIRES_CAPTURE, capturing=True)
    assert not gateway_moves("processing", S.REQUIRES_ACTION, capturing=True, fresh_read=True)
    # Only our own read of the gateway's record, once the capture call is over, may say it never happened.
    assert gateway_moves("processing", S.REQUIRES_CAPTURE, capturing=True, fresh_read=True)
    assert gateway_moves("processing", S.SUCCEEDED, capturing=True)
    assert gateway_moves("processing", S.CANCELED, capturing=True)


@given(
    current=st.sampled_from(list(PaymentStatus)),
    target=st.sampled_from(list(PaymentStatus)),
    capturing=st.booleans(),
    fresh_read=st.booleans(),
)
def test_gateway_moves_are_always_legal_moves_and_forward(current, target, capturing, fresh_read):
    if gateway_moves(current, target, capturing=capturing, fresh_read=fresh_read):
        assert can_move(current, target)
        assert current not in FINAL_STATUSES
        backwards = rank(target) <= rank(current, capturing=capturing)
        assert not backwards or (fresh_read and capturing and target == S.REQUIRES_CAPTURE)


@pytest.mark.parametrize(
    ("status", "captured", "refunded", "expected"),
    [
        (TransactionStatus.AUTHORISED, 0, 0, VOID),
        (TransactionStatus.ACTION_REQUIRED, 0, 0, VOID),
        (TransactionStatus.CAPTURED, 1000, 0, REFUND),
        (TransactionStatus.CAPTURED, 1000, 400, REFUND),
        (TransactionStatus.CAPTURED, 1000, 1000, None),
        (TransactionStatus.VOIDED, 0, 0, None),
        (TransactionStatus.DECLINED, 0, 0, None),
        (TransactionStatus.EXPIRED, 0, 0, None),
    ],
)
def test_money_held_for_a_failed_payment_is_voided_or_refunded(status, captured, refunded, expected):
    held = GatewayTransaction(
        gateway_reference="tx_1",
        reference="pay_1",
        status=status,
        raw_status=str(status),
        amount=1000,
        currency="MAD",
        captured_amount=captured,
        refunded_amount=refunded,
    )
    assert reversal_for(held) == expected


@pytest.mark.parametrize(
    ("status", "decline_code", "failure_code"),
    [
        (TransactionStatus.DECLINED, "insufficient_funds", "insufficient_funds"),
        (TransactionStatus.DECLINED, "stolen_card", "stolen_card"),
        (TransactionStatus.DECLINED, "do_not_honor", "card_declined"),
        (TransactionStatus.DECLINED, "something_new", "card_declined"),
        (TransactionStatus.DECLINED, "wallet_declined", "wallet_declined"),
        (TransactionStatus.EXPIRED, "expired", "wallet_request_expired"),
    ],
)
def test_failure_codes_and_messages(status, decline_code, failure_code):
    code, message = failure_for(transaction(status, decline_code))
    assert code == failure_code and message


@given(
    captured=st.integers(min_value=1, max_value=10**7),
    fee_share=st.floats(min_value=0, max_value=1),  # the commission is at most what was captured
    parts=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=8),
)
def test_refunds_in_parts_give_back_exactly_the_whole_commission(captured, fee_share, parts):
    fee = int(captured * fee_share)
    refunded = fee_refunded = 0
    for part in parts:
        amount = min(part, captured - refunded)
        if amount <= 0:
            break
        share = proportional_fee(fee, captured, amount, fee_refunded, refunded)
        assert 0 <= share <= amount
        refunded += amount
        fee_refunded += share
    if refunded < captured:
        last = captured - refunded
        share = proportional_fee(fee, captured, last, fee_refunded, refunded)
        assert 0 <= share <= last
        fee_refunded += share
    assert fee_refunded == fee


def test_a_small_last_refund_never_carries_more_commission_than_itself():
    # 9 of 10 in commission, refunded 3 + 3 + 3 + 1: the last refund of 1 carries at most 1.
    shares, refunded, fee_refunded = [], 0, 0
    for amount in (3, 3, 3, 1):
        share = proportional_fee(9, 10, amount, fee_refunded, refunded)
        shares.append(share)
        refunded, fee_refunded = refunded + amount, fee_refunded + share
    assert sum(shares) == 9 and all(
        share <= amount for share, amount in zip(shares, (3, 3, 3, 1), strict=True)
    )
