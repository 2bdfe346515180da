"""What a gateway snapshot does to a payment, decided without a database: duplicates, stale and
out-of-order news never move a payment backwards, and money held for a failed payment is noticed."""

from __future__ import annotations

import dataclasses

import pytest

from services.payments.domain.gateway import GatewayTransaction, TransactionStatus
from services.payments.domain.payments import (
    PaymentPosition,
    PaymentStatus,
    SnapshotVerdict,
    counts_as_new_charge,
    snapshot_move,
)

S = PaymentStatus
T = TransactionStatus
V = SnapshotVerdict


def payment(status: str = S.PROCESSING, **changes: object) -> PaymentPosition:
    base = PaymentPosition(
        id="pay_1",
        status=str(status),
        capture_method="automatic",
        gateway_reference="tx_1",
        gateway_updated_at=100,
        capturing=False,
    )
    return dataclasses.replace(base, **changes)


def snapshot(status: TransactionStatus, updated_at: int = 100, **changes: object) -> GatewayTransaction:
    base = GatewayTransaction(
        gateway_reference="tx_1",
        reference="pay_1",
        status=status,
        raw_status=str(status),
        amount=10_000,
        currency="MAD",
        captured_amount=10_000 if status is T.CAPTURED else 0,
        updated_at=updated_at,
    )
    return dataclasses.replace(base, **changes)


def test_a_capture_moves_a_processing_payment_to_succeeded():
    move = snapshot_move(payment(), snapshot(T.CAPTURED, 101))
    assert move.verdict is V.MOVE and move.moves and move.target is S.SUCCEEDED


def test_a_snapshot_of_another_payment_or_a_second_transaction_is_ignored():
    assert snapshot_move(payment(), snapshot(T.CAPTURED, reference="pay_2")).verdict is V.FOREIGN
    second = snapshot(T.CAPTURED, gateway_reference="tx_2")
    assert snapshot_move(payment(), second).verdict is V.SECOND_TRANSACTION
    # The first snapshot names the transaction: no second one yet.
    assert snapshot_move(payment(gateway_reference=None), second).moves


def test_an_older_snapshot_is_stale_and_one_of_the_same_second_is_ordered_by_rank():
    assert snapshot_move(payment(), snapshot(T.CAPTURED, 99)).verdict is V.STALE
    assert snapshot_move(payment(), snapshot(T.CAPTURED, 100)).moves


def test_a_duplicate_changes_nothing_but_the_clock():
    move = snapshot_move(payment(S.SUCCEEDED), snapshot(T.CAPTURED, 120))
    assert move.verdict is V.UNCHANGED and move.target is S.SUCCEEDED


@pytest.mark.parametrize(
    ("current", "news"),
    [
        (S.REQUIRES_CAPTURE, T.ACTION_REQUIRED),  # backwards
        (S.SUCCEEDED, T.DECLINED),  # final
        (S.REQUIRES_ACTION, T.AUTHORISED),  # automatic capture: authorised is still processing
    ],
)
def test_news_that_is_not_progress_is_ignored(current, news):
    assert snapshot_move(payment(current), snapshot(news, 200)).verdict is V.NOT_FORWARD


def test_while_capturing_only_a_fresh_read_may_say_the_capture_did_not_happen():
    capturing = payment(S.PROCESSING, capture_method="manual", capturing=True)
    authorised = snapshot(T.AUTHORISED, 200)
    assert snapshot_move(capturing, authorised).verdict is V.STALE_AUTHORISED
    back = snapshot_move(capturing, authorised, fresh_read=True)
    assert back.moves and back.target is S.REQUIRES_CAPTURE
    assert snapshot_move(capturing, snapshot(T.CAPTURED, 200)).target is S.SUCCEEDED


@pytest.mark.parametrize("final", [S.FAILED, S.CANCELED])
@pytest.mark.parametrize("held", [T.AUTHORISED, T.CAPTURED])
def test_money_held_for_a_failed_or_canceled_payment_is_noticed(final, held):
    assert snapshot_move(payment(final), snapshot(held, 300)).verdict is V.MONEY_HELD


def test_a_decline_fails_a_payment_waiting_on_the_buyer():
    move = snapshot_move(payment(S.REQUIRES_ACTION), snapshot(T.DECLINED, 150))
    assert move.moves and move.target is S.FAILED


@pytest.mark.parametrize(
    ("snapshot_at", "final_word_at", "new_charge"),
    [
        (101, 100, True),  # after the gateway's final word: a charge landed after we gave up
        (100, 100, False),  # the same second: part of the old story
        (99, 100, False),  # older: a late snapshot
        (1, 0, True),  # no word from the gateway yet: any snapshot is news
    ],
)
def test_only_a_snapshot_newer_than_the_final_word_counts_as_a_new_charge(
    snapshot_at, final_word_at, new_charge
):
    assert counts_as_new_charge(snapshot_at, final_word_at) is new_charge
